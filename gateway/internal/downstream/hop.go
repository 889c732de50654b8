package downstream

import (
	"flag"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Hops bounds each upscale call (one hop of a chain) by a timeout derived
// from the hop times this gateway measured: Factor × the Quantile of the
// last successful calls for the same input side (a 128 px pass takes
// longer than a 32 px one), within [Min, Max]. Until a side has
// minHopSamples measurements its hops get Max. A hop only ever shortens the
// caller's deadline. A try that runs past its timeout is an outlier: the
// replica is ejected for a while (platform client's balancer) and the hop
// tried again at once on another replica, up to Tries tries.
//
// Why a moving quantile and not a fixed timeout: upscale time depends on the
// model, the side, the backend and the load (queueing in the replica), from
// milliseconds to seconds; a fixed value is either too long to help (a hung
// replica holds the call for it) or too short for a loaded pool.
type Hops struct {
	Quantile float64
	Factor   float64
	Min, Max time.Duration
	Tries    int
}

// DefaultHops: 4 × p99 within [1 s, 5 s], 3 tries. The floor keeps
// ordinary jitter on a shared, loaded machine from looking like a hung
// replica; the ceiling is half of the shortest deadlines clients use (10 s),
// so a hung replica costs a request one retry, not its deadline.
var DefaultHops = Hops{Quantile: 0.99, Factor: 4, Min: time.Second, Max: 5 * time.Second, Tries: 3}

// RegisterFlags defines the hop-timeout flags on fs and returns the Hops
// they write into once fs is parsed.
func RegisterFlags(fs *flag.FlagSet) *Hops {
	h := DefaultHops
	fs.Float64Var(&h.Quantile, "hop-timeout-quantile", h.Quantile, "upscale hop timeout: quantile of the measured hop times (same input side) it is based on")
	fs.Float64Var(&h.Factor, "hop-timeout-factor", h.Factor, "upscale hop timeout: multiple of that quantile")
	fs.DurationVar(&h.Min, "hop-timeout-min", h.Min, "upscale hop timeout: floor")
	fs.DurationVar(&h.Max, "hop-timeout-max", h.Max, "upscale hop timeout: ceiling, and the timeout before enough hops were measured")
	fs.IntVar(&h.Tries, "hop-tries", h.Tries, "tries of an upscale hop that timed out, each on another replica")
	return &h
}

// Measurement windows: the last hopWindow successful hops per side, the
// quantile recomputed every hopRecompute of them (a sort of 128 durations).
const (
	hopWindow     = 128
	hopRecompute  = 16
	minHopSamples = 16
)

// timeout is the limit for a hop of an image of this side.
func (h Hops) timeout(t *hopTimes, side int) time.Duration {
	q, ok := t.quantile(side, h.Quantile)
	if !ok {
		return h.Max
	}
	return min(max(time.Duration(float64(q)*h.Factor), h.Min), h.Max)
}

// hopTimes keeps recent successful hop durations per input side.
type hopTimes struct {
	mu     sync.Mutex
	bySide map[int]*hopWindowOf
}

type hopWindowOf struct {
	samples  []time.Duration // ring of the last hopWindow
	next     int
	sinceFit int
	q        float64 // quantile the cache is for
	cached   time.Duration
}

func newHopTimes() *hopTimes { return &hopTimes{bySide: map[int]*hopWindowOf{}} }

func (t *hopTimes) observe(side int, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.bySide[side]
	if w == nil {
		w = &hopWindowOf{}
		t.bySide[side] = w
	}
	if len(w.samples) < hopWindow {
		w.samples = append(w.samples, d)
	} else {
		w.samples[w.next] = d
		w.next = (w.next + 1) % hopWindow
	}
	w.sinceFit++
}

func (t *hopTimes) quantile(side int, q float64) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.bySide[side]
	if w == nil || len(w.samples) < minHopSamples {
		return 0, false
	}
	if w.cached == 0 || w.sinceFit >= hopRecompute || w.q != q {
		s := slices.Clone(w.samples)
		slices.Sort(s)
		w.cached = s[min(len(s)-1, int(q*float64(len(s))))]
		w.q, w.sinceFit = q, 0
	}
	return w.cached, true
}

// hopTimeout is a try that its hop timeout ended while the caller waited.
type hopTimeout struct {
	limit time.Duration
	tries int
	err   error
}

func (h *hopTimeout) Error() string {
	return fmt.Sprintf("no answer within the hop timeout of %v (try %d): %v", h.limit, h.tries, h.err)
}

func (h *hopTimeout) Unwrap() error { return h.err }

// GRPCStatus makes the timeout a DEADLINE_EXCEEDED, whatever the client
// library called it.
func (h *hopTimeout) GRPCStatus() *status.Status {
	return status.New(codes.DeadlineExceeded, h.Error())
}
