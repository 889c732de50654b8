// Package pubsub fans events out to any number of subscribers without ever
// letting a slow subscriber slow the publisher: each subscriber has its own
// queue, events published with a coalescing key replace an undelivered event of
// the same key (so a stalled watcher sees only the latest progress), and events
// without a key are always delivered, in order.
//
// Publish never blocks. Snapshot-then-stream without gaps is the caller's job:
// take the snapshot and Subscribe under the same lock the publisher holds.
package pubsub

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned by Next once the topic is closed and the queue drained.
var ErrClosed = errors.New("pubsub: closed")

// Topic is one stream of events of type E.
type Topic[E any] struct {
	mu     sync.Mutex
	subs   map[*Subscription[E]]struct{}
	closed bool
}

// New returns an open topic.
func New[E any]() *Topic[E] {
	return &Topic[E]{subs: make(map[*Subscription[E]]struct{})}
}

type entry[E any] struct {
	ev  E
	key string // "" = always delivered
}

// Subscription is one subscriber's queue. It is not safe for concurrent Next
// calls; Close may be called from anywhere.
type Subscription[E any] struct {
	t      *Topic[E]
	mu     sync.Mutex
	queue  []entry[E]
	notify chan struct{} // capacity 1: "the queue changed"
	closed bool          // no more events will arrive
}

// Subscribe adds a subscriber whose queue starts with first (e.g. a snapshot).
// On a closed topic the subscription holds only first and then ends.
func (t *Topic[E]) Subscribe(first E) *Subscription[E] {
	s := &Subscription[E]{t: t, notify: make(chan struct{}, 1)}
	s.queue = append(s.queue, entry[E]{ev: first})
	s.signal()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		s.closed = true
		return s
	}
	t.subs[s] = struct{}{}
	return s
}

// Publish queues ev for every subscriber. With a non-empty key, an
// undelivered event with the same key is replaced in place (coalesced);
// with key "" the event is always delivered.
func (t *Topic[E]) Publish(ev E, key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	for s := range t.subs {
		s.push(entry[E]{ev: ev, key: key})
	}
}

// Close ends the topic: subscribers receive what is queued, then ErrClosed.
// Publishing after Close does nothing.
func (t *Topic[E]) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	for s := range t.subs {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.signal()
	}
	clear(t.subs)
}

// Subscribers returns the number of live subscriptions.
func (t *Topic[E]) Subscribers() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.subs)
}

func (s *Subscription[E]) push(e entry[E]) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	replaced := false
	if e.key != "" {
		for i := range s.queue {
			if s.queue[i].key == e.key {
				s.queue[i] = e
				replaced = true
				break
			}
		}
	}
	if !replaced {
		s.queue = append(s.queue, e)
	}
	s.mu.Unlock()
	s.signal()
}

func (s *Subscription[E]) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Next returns the next event, waiting for one. It returns ErrClosed after the
// last event of a closed topic (or after Close), and ctx's error when ctx ends.
func (s *Subscription[E]) Next(ctx context.Context) (E, error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			e := s.queue[0]
			var zero entry[E]
			s.queue[0] = zero
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return e.ev, nil
		}
		closed := s.closed
		s.mu.Unlock()
		if closed {
			var zero E
			return zero, ErrClosed
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			var zero E
			return zero, ctx.Err()
		}
	}
}

// Close removes the subscriber; queued events are discarded.
func (s *Subscription[E]) Close() {
	s.t.mu.Lock()
	delete(s.t.subs, s)
	s.t.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.queue = nil
	s.mu.Unlock()
	s.signal()
}
