package batch

import (
	"flag"
	"time"
)

// Defaults of the batching flags (docs/operations.md).
const (
	DefaultMaxBatch  = 8
	DefaultMaxWait   = 5 * time.Millisecond
	DefaultQueueSize = 64
)

// RegisterFlags defines --max-batch, --max-wait and --queue-size on fs (the
// platform's config.Parse gives them HIREZ_* environment fallbacks) and
// returns the Config they write into once fs is parsed.
func RegisterFlags(fs *flag.FlagSet) *Config {
	c := &Config{MaxBatch: DefaultMaxBatch, MaxWait: DefaultMaxWait, QueueSize: DefaultQueueSize, Workers: 1}
	fs.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "dynamic batching: largest batch (1 disables batching)")
	fs.DurationVar(&c.MaxWait, "max-wait", c.MaxWait, "dynamic batching: longest wait for a batch to fill")
	fs.IntVar(&c.QueueSize, "queue-size", c.QueueSize, "queued requests before RESOURCE_EXHAUSTED")
	return c
}
