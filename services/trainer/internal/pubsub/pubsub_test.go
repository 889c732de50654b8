package pubsub

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func drain(t *testing.T, s *Subscription[string]) []string {
	t.Helper()
	var got []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ev, err := s.Next(ctx)
		cancel()
		if errors.Is(err, ErrClosed) {
			return got
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		got = append(got, ev)
	}
}

func TestSnapshotFirstThenEventsInOrder(t *testing.T) {
	tp := New[string]()
	s := tp.Subscribe("snapshot")
	tp.Publish("a", "")
	tp.Publish("b", "")
	tp.Close()
	got := drain(t, s)
	want := []string{"snapshot", "a", "b"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestSlowSubscriberCoalescesButKeepsUnkeyed(t *testing.T) {
	tp := New[string]()
	slow := tp.Subscribe("snap")
	for i := range 1000 {
		tp.Publish(string(rune('0'+i%10)), "progress")
		if i == 500 {
			tp.Publish("checkpoint", "")
		}
	}
	tp.Publish("final", "")
	tp.Close()
	got := drain(t, slow)
	// snap, one coalesced progress (the latest), checkpoint, final.
	want := []string{"snap", "9", "checkpoint", "final"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestPublishNeverBlocksOnStalledSubscriber(t *testing.T) {
	tp := New[int]()
	_ = tp.Subscribe(0) // never read
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 100000 {
			tp.Publish(i, "p")
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a stalled subscriber")
	}
	tp.Close()
}

func TestManySubscribersConcurrent(t *testing.T) {
	tp := New[int]()
	var wg sync.WaitGroup
	results := make([][]int, 8)
	for i := range results {
		s := tp.Subscribe(-1)
		wg.Go(func() {
			for {
				ev, err := s.Next(context.Background())
				if err != nil {
					return
				}
				results[i] = append(results[i], ev)
			}
		})
	}
	for i := range 100 {
		tp.Publish(i, "")
	}
	tp.Close()
	wg.Wait()
	for i, r := range results {
		if len(r) != 101 || r[0] != -1 || r[100] != 99 {
			t.Errorf("subscriber %d got %d events (first %v)", i, len(r), r[:1])
		}
	}
}

func TestLateSubscribeOnClosedTopicGetsFirstOnly(t *testing.T) {
	tp := New[string]()
	tp.Close()
	s := tp.Subscribe("snap")
	got := drain(t, s)
	if len(got) != 1 || got[0] != "snap" {
		t.Fatalf("got %v", got)
	}
}

func TestNextHonoursContextAndUnsubscribe(t *testing.T) {
	tp := New[string]()
	s := tp.Subscribe("x")
	if _, err := s.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next = %v, want deadline", err)
	}
	s.Close()
	if n := tp.Subscribers(); n != 0 {
		t.Fatalf("%d subscribers after Close", n)
	}
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close = %v", err)
	}
}
