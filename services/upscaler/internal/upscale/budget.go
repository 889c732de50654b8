package upscale

import (
	"context"
	"sync"

	"github.com/hirez-ml/hirez/platform/fault"
)

// ReasonTooLarge is the fault reason of a request whose Cost exceeds the whole
// in-flight budget, so that no amount of waiting would admit it.
const ReasonTooLarge = "REQUEST_OVER_MEMORY_BUDGET"

// budget bounds the bytes of the requests in flight: acquire waits, first
// come first served, until n bytes fit (so a large request is not starved by
// a stream of small ones), or the caller's ctx ends.
type budget struct {
	mu      sync.Mutex
	limit   int64
	used    int64
	peak    int64
	waiters []*waiter // FIFO
}

type waiter struct {
	n     int64
	ready chan struct{} // closed once the bytes are granted
}

func newBudget(limit int64) *budget { return &budget{limit: limit} }

// acquire takes n bytes, waiting while they do not fit. It fails at once with
// a fault.KindOverloaded error when n exceeds the whole budget, and with
// ctx.Err() when ctx ends first (nothing is then held).
func (b *budget) acquire(ctx context.Context, n int64) error {
	if n > b.limit {
		return fault.New(fault.KindOverloaded, ReasonTooLarge,
			"the request needs %.1f MiB of image memory, more than this upscaler's whole in-flight budget of %.1f MiB; send fewer or smaller images per call",
			mib(n), mib(b.limit))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.limit {
		b.take(n)
		b.mu.Unlock()
		return nil
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted while ctx ended: give it back
		b.used -= n
		b.grant()
	default:
		for i, q := range b.waiters {
			if q == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
		b.grant() // the head may have changed
	}
	return ctx.Err()
}

// release gives back n bytes taken by acquire.
func (b *budget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.grant()
}

// grant admits waiters from the head of the queue while they fit. b.mu held.
func (b *budget) grant() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.limit {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.take(w.n)
		close(w.ready)
	}
}

// take adds n to the bytes in use. b.mu held.
func (b *budget) take(n int64) {
	b.used += n
	b.peak = max(b.peak, b.used)
}

// InFlight is a snapshot of the in-flight budget.
type InFlight struct {
	Bytes   int64 // Cost of the requests admitted now
	Peak    int64 // the most Bytes ever were
	Waiting int   // requests waiting for room
	Limit   int64 // the budget (Memory.MaxInFlightBytes)
}

func (b *budget) stats() InFlight {
	b.mu.Lock()
	defer b.mu.Unlock()
	return InFlight{Bytes: b.used, Peak: b.peak, Waiting: len(b.waiters), Limit: b.limit}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
