// Package batch is the dynamic batcher the generator and the upscaler share.
//
// Callers Submit one request at a time; the batcher collects concurrent requests
// into batches of at most MaxBatch, waiting at most MaxWait after the first
// request of a batch arrived, and runs each batch with one call of the run
// function. Load is bounded: when QueueSize requests are waiting, Submit fails at
// once with a fault.KindOverloaded error (RESOURCE_EXHAUSTED on the wire) instead
// of stalling the caller. A request whose context ends while it waits is removed
// from the queue and never computed.
//
// The package is domain-side: it imports no gRPC. Its goroutines (one dispatcher,
// at most Workers batch runners) are owned by the Batcher and stopped by Close.
package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hirez-ml/hirez/platform/fault"
)

// Reasons of the faults Submit returns, for clients that branch on them.
const (
	ReasonQueueFull = "QUEUE_FULL"
	ReasonClosed    = "SHUTTING_DOWN"
)

// Config bounds a Batcher.
type Config struct {
	// MaxBatch is the largest batch run at once; 1 disables batching.
	MaxBatch int
	// MaxWait is how long the first request of a batch waits for more to arrive.
	MaxWait time.Duration
	// QueueSize is how many requests may wait; one more is refused at once.
	QueueSize int
	// Workers is how many batches may run concurrently; 0 means 1.
	Workers int
}

// Validate reports a config no batcher can run with.
func (c Config) Validate() error {
	var errs []error
	if c.MaxBatch < 1 {
		errs = append(errs, fmt.Errorf("max batch must be at least 1, got %d", c.MaxBatch))
	}
	if c.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("max wait must not be negative, got %v", c.MaxWait))
	}
	if c.QueueSize < 1 {
		errs = append(errs, fmt.Errorf("queue size must be at least 1, got %d", c.QueueSize))
	}
	if c.Workers < 0 {
		errs = append(errs, fmt.Errorf("workers must not be negative, got %d", c.Workers))
	}
	return errors.Join(errs...)
}

// RunFunc computes one batch: it returns exactly one response per request, in
// order, or an error that every request of the batch receives. Its ctx is
// cancelled once every caller in the batch has gone away, or when Close gives up
// draining, so a long computation should check ctx.Err() between steps.
type RunFunc[Req, Resp any] func(ctx context.Context, reqs []Req) ([]Resp, error)

// Observer receives the batcher's measurements; attach Prometheus gauges with
// NewPrometheusObserver, or pass nil for none. Methods are called from the
// batcher's goroutines and must not block.
type Observer interface {
	// QueueDepth reports the number of waiting requests after it changed.
	QueueDepth(n int)
	// BatchSize reports the size of a batch about to run.
	BatchSize(n int)
}

// Option configures a Batcher beyond its Config.
type Option[Req any] func(*options[Req])

type options[Req any] struct {
	observer Observer
	key      func(Req) string
	limit    func(Req) int
}

// WithObserver reports queue depth and batch sizes to o.
func WithObserver[Req any](o Observer) Option[Req] {
	return func(opt *options[Req]) { opt.observer = o }
}

// WithKey batches only requests with equal keys together (e.g. images of one
// size). A batch takes the oldest waiting request and the next requests, in
// arrival order, that share its key; others wait for a later batch.
func WithKey[Req any](key func(Req) string) Option[Req] {
	return func(opt *options[Req]) { opt.key = key }
}

// WithBatchLimit caps a batch below MaxBatch by its first request: limit(req)
// is the most requests a batch headed by req may hold (clamped to
// [1, MaxBatch]). The upscaler uses it to bound a batch's pixels: on a CPU a
// batch of large images runs no faster per image than one at a time, while
// each of its callers waits for the whole batch (docs/serving.md).
func WithBatchLimit[Req any](limit func(Req) int) Option[Req] {
	return func(opt *options[Req]) { opt.limit = limit }
}

// maxBatch is the batch size limit for a batch headed by req.
func (b *Batcher[Req, Resp]) maxBatch(req Req) int {
	if b.opts.limit == nil {
		return b.cfg.MaxBatch
	}
	return max(1, min(b.cfg.MaxBatch, b.opts.limit(req)))
}

type result[Resp any] struct {
	resp Resp
	err  error
}

type item[Req, Resp any] struct {
	ctx  context.Context
	req  Req
	key  string
	at   time.Time
	done chan result[Resp] // buffered 1: the runner never blocks on a caller
}

// Batcher collects requests into batches; see the package doc.
type Batcher[Req, Resp any] struct {
	cfg  Config
	run  RunFunc[Req, Resp]
	opts options[Req]

	mu     sync.Mutex
	queue  []*item[Req, Resp]
	closed bool

	notify chan struct{}   // poked (non-blocking) when the queue grows or Close begins
	slots  chan struct{}   // one token per running batch, capacity Workers
	base   context.Context // parent of every batch ctx; cancelled when Close gives up
	abort  context.CancelFunc
	runs   sync.WaitGroup // batch runners
	loop   chan struct{}  // closed when the dispatcher has returned
}

// New starts a batcher that runs batches with run.
func New[Req, Resp any](cfg Config, run RunFunc[Req, Resp], opts ...Option[Req]) (*Batcher[Req, Resp], error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	if run == nil {
		return nil, errors.New("batch: nil run function")
	}
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	b := &Batcher[Req, Resp]{
		cfg:    cfg,
		run:    run,
		notify: make(chan struct{}, 1),
		slots:  make(chan struct{}, cfg.Workers),
		loop:   make(chan struct{}),
	}
	for _, o := range opts {
		o(&b.opts)
	}
	if b.opts.observer == nil {
		b.opts.observer = nopObserver{}
	}
	b.base, b.abort = context.WithCancel(context.Background())
	go b.dispatch()
	return b, nil
}

// Config returns the config the batcher runs with.
func (b *Batcher[Req, Resp]) Config() Config { return b.cfg }

// Submit queues req and waits for its response. It fails at once with a
// fault.KindOverloaded error when the queue is full, with fault.KindUnavailable
// after Close, and with ctx.Err() when ctx ends first (the request is then
// dropped if it has not started).
func (b *Batcher[Req, Resp]) Submit(ctx context.Context, req Req) (Resp, error) {
	var zero Resp
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	it := &item[Req, Resp]{ctx: ctx, req: req, at: time.Now(), done: make(chan result[Resp], 1)}
	if b.opts.key != nil {
		it.key = b.opts.key(req)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return zero, fault.New(fault.KindUnavailable, ReasonClosed, "batch: shutting down")
	}
	if len(b.queue) >= b.cfg.QueueSize {
		b.mu.Unlock()
		return zero, fault.New(fault.KindOverloaded, ReasonQueueFull,
			"queue full (%d requests waiting); retry later", b.cfg.QueueSize)
	}
	b.queue = append(b.queue, it)
	depth := len(b.queue)
	b.mu.Unlock()
	b.opts.observer.QueueDepth(depth)
	b.poke()

	select {
	case r := <-it.done:
		return r.resp, r.err
	case <-ctx.Done():
		b.remove(it)
		return zero, ctx.Err()
	}
}

// remove takes it out of the queue if it is still waiting there.
func (b *Batcher[Req, Resp]) remove(it *item[Req, Resp]) {
	b.mu.Lock()
	depth := -1
	for i, q := range b.queue {
		if q == it {
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			depth = len(b.queue)
			break
		}
	}
	b.mu.Unlock()
	if depth >= 0 {
		b.opts.observer.QueueDepth(depth)
	}
}

func (b *Batcher[Req, Resp]) poke() {
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// dispatch forms batches: it waits for a free runner, then for a batch to fill
// (MaxBatch requests with one key) or for the oldest request to have waited
// MaxWait, and hands the batch to a new runner goroutine.
func (b *Batcher[Req, Resp]) dispatch() {
	defer close(b.loop)
	for {
		b.slots <- struct{}{} // never blocks forever: runners always return their slot
		batch, ok := b.next()
		if !ok {
			<-b.slots
			return
		}
		b.runs.Add(1)
		go func() {
			defer b.runs.Done()
			defer func() { <-b.slots }()
			b.execute(batch)
		}()
	}
}

// next blocks until a batch is ready; it returns false once the batcher is
// closed and its queue is empty.
func (b *Batcher[Req, Resp]) next() ([]*item[Req, Resp], bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		if b.base.Err() != nil {
			// Close gave up draining: it fails whatever is still queued.
			b.mu.Unlock()
			return nil, false
		}
		if len(b.queue) == 0 {
			closed := b.closed
			b.mu.Unlock()
			if closed {
				return nil, false
			}
			<-b.notify
			continue
		}
		head := b.queue[0]
		limit := b.maxBatch(head.req)
		same := 0
		for _, it := range b.queue {
			if it.key == head.key {
				same++
				if same == limit {
					break
				}
			}
		}
		wait := time.Until(head.at.Add(b.cfg.MaxWait))
		if same >= limit || wait <= 0 || b.closed {
			batch := b.take(head.key, limit)
			depth := len(b.queue)
			b.mu.Unlock()
			b.opts.observer.QueueDepth(depth)
			if batch = dropDone(batch); len(batch) > 0 {
				return batch, true
			}
			continue
		}
		b.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-b.notify:
		case <-timer.C:
		}
	}
}

// take removes and returns, in arrival order, up to limit queued requests
// with the given key. b.mu must be held.
func (b *Batcher[Req, Resp]) take(key string, limit int) []*item[Req, Resp] {
	batch := make([]*item[Req, Resp], 0, min(limit, len(b.queue)))
	rest := b.queue[:0]
	for _, it := range b.queue {
		if it.key == key && len(batch) < limit {
			batch = append(batch, it)
		} else {
			rest = append(rest, it)
		}
	}
	clear(b.queue[len(rest):]) // let the taken items be collected
	b.queue = rest
	return batch
}

// dropDone answers and removes requests whose caller has already gone away, so
// no compute is spent on them.
func dropDone[Req, Resp any](batch []*item[Req, Resp]) []*item[Req, Resp] {
	live := batch[:0]
	for _, it := range batch {
		if err := it.ctx.Err(); err != nil {
			it.done <- result[Resp]{err: err}
			continue
		}
		live = append(live, it)
	}
	return live
}

// execute runs one batch and answers every request in it. The batch ctx ends
// when every caller in the batch has gone away, or when Close aborts.
func (b *Batcher[Req, Resp]) execute(batch []*item[Req, Resp]) {
	if b.base.Err() != nil {
		for _, it := range batch {
			it.done <- result[Resp]{err: errShutDown()}
		}
		return
	}
	ctx, cancel := context.WithCancel(b.base)
	defer cancel()
	var alive atomic.Int64
	alive.Store(int64(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, it := range batch {
		stops[i] = context.AfterFunc(it.ctx, func() {
			if alive.Add(-1) == 0 {
				cancel()
			}
		})
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()

	reqs := make([]Req, len(batch))
	for i, it := range batch {
		reqs[i] = it.req
	}
	b.opts.observer.BatchSize(len(batch))
	resps, err := b.call(ctx, reqs)
	if err == nil && len(resps) != len(reqs) {
		err = fmt.Errorf("batch: run returned %d responses for %d requests", len(resps), len(reqs))
	}
	for i, it := range batch {
		if err != nil {
			it.done <- result[Resp]{err: err}
		} else {
			it.done <- result[Resp]{resp: resps[i]}
		}
	}
}

// call runs the batch, turning a panic into an error so one bad batch cannot
// take the server down.
func (b *Batcher[Req, Resp]) call(ctx context.Context, reqs []Req) (resps []Resp, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("batch: run panicked: %v", r)
		}
	}()
	return b.run(ctx, reqs)
}

// Close stops accepting requests, lets the queued ones run, and waits for every
// goroutine of the batcher. When ctx ends first, it cancels the running batches'
// contexts, fails the requests still queued with a fault.KindUnavailable error,
// waits for the runners to return, and returns ctx.Err(). Close may be called
// more than once.
func (b *Batcher[Req, Resp]) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.poke()

	drained := make(chan struct{})
	go func() {
		<-b.loop
		b.runs.Wait()
		close(drained)
	}()
	select {
	case <-drained:
		b.abort()
		return nil
	case <-ctx.Done():
	}
	b.abort()
	b.mu.Lock()
	rest := b.queue
	b.queue = nil
	b.mu.Unlock()
	for _, it := range rest {
		it.done <- result[Resp]{err: errShutDown()}
	}
	b.opts.observer.QueueDepth(0)
	b.poke()
	<-drained
	return ctx.Err()
}

// Len returns the number of waiting requests.
func (b *Batcher[Req, Resp]) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

func errShutDown() error {
	return fault.New(fault.KindUnavailable, ReasonClosed, "batch: shut down before the request ran")
}

type nopObserver struct{}

func (nopObserver) QueueDepth(int) {}
func (nopObserver) BatchSize(int)  {}
