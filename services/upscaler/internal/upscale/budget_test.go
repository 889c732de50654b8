package upscale

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/platform/fault"
)

// queued waits until b has n waiters (the goroutines under test blocked).
func queued(b *budget, n int) {
	for b.stats().Waiting != n {
		runtime.Gosched()
	}
}

func TestBudgetWaitsInOrder(t *testing.T) {
	b := newBudget(100)
	ctx := context.Background()
	if err := b.acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	// 50 does not fit behind 60; 10 would, but waits behind 50 (first come,
	// first served: small requests cannot starve a large one).
	big, small := make(chan error, 1), make(chan error, 1)
	go func() { big <- b.acquire(ctx, 50) }()
	queued(b, 1)
	go func() { small <- b.acquire(ctx, 10) }()
	queued(b, 2)
	b.release(60)
	if err := <-big; err != nil {
		t.Fatal(err)
	}
	if err := <-small; err != nil {
		t.Fatal(err)
	}
	if st := b.stats(); st.Bytes != 60 || st.Peak != 60 {
		t.Errorf("%+v; want 60 bytes, peak 60", st)
	}
	b.release(50)
	b.release(10)
	if st := b.stats(); st.Bytes != 0 {
		t.Errorf("%+v after every release", st)
	}
}

func TestBudgetDeadlineWhileWaiting(t *testing.T) {
	b := newBudget(100)
	if err := b.acquire(context.Background(), 90); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	blocked := make(chan error, 1)
	go func() { blocked <- b.acquire(ctx, 50) }()
	queued(b, 1)
	next := make(chan error, 1)
	go func() { next <- b.acquire(context.Background(), 10) }() // fits, but queued behind 50
	queued(b, 2)
	cancel()
	if err := <-blocked; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	if err := <-next; err != nil { // the head gave up: the next one fits now
		t.Fatal(err)
	}
	if st := b.stats(); st.Bytes != 100 || st.Waiting != 0 {
		t.Errorf("%+v, want 100 bytes (the cancelled request holds nothing), no waiters", st)
	}
}

func TestBudgetRefusesWhatNeverFits(t *testing.T) {
	b := newBudget(1 << 20)
	err := b.acquire(context.Background(), 3<<20)
	var f *fault.Error
	if !errors.As(err, &f) || f.Kind != fault.KindOverloaded || f.Reason != ReasonTooLarge || !strings.Contains(err.Error(), "3.0 MiB") || !strings.Contains(err.Error(), "1.0 MiB") {
		t.Fatalf("over the whole budget: %v", err)
	}
	if st := b.stats(); st != (InFlight{Limit: b.limit}) {
		t.Errorf("%+v after a refusal", st)
	}
}
