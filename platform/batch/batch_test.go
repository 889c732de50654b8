package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hirez-ml/hirez/platform/fault"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a run function that doubles ints and records batch sizes.
type recorder struct {
	mu    sync.Mutex
	sizes []int
	seen  []int
	gate  chan struct{} // when non-nil, each batch waits for a receive from it... or close
}

func (r *recorder) run(ctx context.Context, reqs []int) ([]int, error) {
	r.mu.Lock()
	r.sizes = append(r.sizes, len(reqs))
	r.seen = append(r.seen, reqs...)
	r.mu.Unlock()
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := make([]int, len(reqs))
	for i, v := range reqs {
		out[i] = 2 * v
	}
	return out, nil
}

func (r *recorder) batchSizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sizes)
}

func (r *recorder) computed() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

func mustNew[Req, Resp any](t *testing.T, cfg Config, run RunFunc[Req, Resp], opts ...Option[Req]) *Batcher[Req, Resp] {
	t.Helper()
	b, err := New(cfg, run, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// waitQueued waits until n requests are waiting in b.
func waitQueued[Req, Resp any](t *testing.T, b *Batcher[Req, Resp], n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.Len() != n {
		if time.Now().After(deadline) {
			t.Fatalf("queue holds %d requests, want %d", b.Len(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// submitAll submits 0..n-1 concurrently and checks every answer.
func submitAll(t *testing.T, b *Batcher[int, int], n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			got, err := b.Submit(context.Background(), i)
			if err != nil {
				errs <- err
				return
			}
			if got != 2*i {
				errs <- fmt.Errorf("Submit(%d) = %d, want %d", i, got, 2*i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ok", Config{MaxBatch: 8, MaxWait: 5 * time.Millisecond, QueueSize: 64}, true},
		{"no batching", Config{MaxBatch: 1, QueueSize: 1}, true},
		{"zero batch", Config{MaxBatch: 0, QueueSize: 1}, false},
		{"negative wait", Config{MaxBatch: 1, MaxWait: -1, QueueSize: 1}, false},
		{"zero queue", Config{MaxBatch: 1, QueueSize: 0}, false},
		{"negative workers", Config{MaxBatch: 1, QueueSize: 1, Workers: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			b, err := New(tt.cfg, (&recorder{}).run)
			if (err == nil) != tt.ok {
				t.Fatalf("New() = %v, want ok=%v", err, tt.ok)
			}
			if b != nil {
				if err := b.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestBatchesFormUnderConcurrency(t *testing.T) {
	r := &recorder{gate: make(chan struct{})}
	b := mustNew(t, Config{MaxBatch: 4, MaxWait: time.Hour, QueueSize: 64}, r.run)
	done := make(chan struct{})
	go func() {
		defer close(done)
		submitAll(t, b, 8)
	}()
	// With MaxWait an hour, batches can only run because they filled up.
	close(r.gate)
	<-done
	if got := r.batchSizes(); !slices.Equal(got, []int{4, 4}) {
		t.Fatalf("batch sizes %v, want [4 4]", got)
	}
}

func TestMaxWaitRunsPartialBatch(t *testing.T) {
	r := &recorder{}
	b := mustNew(t, Config{MaxBatch: 8, MaxWait: 20 * time.Millisecond, QueueSize: 8}, r.run)
	start := time.Now()
	got, err := b.Submit(context.Background(), 21)
	if err != nil || got != 42 {
		t.Fatalf("Submit = %d, %v", got, err)
	}
	if el := time.Since(start); el < 20*time.Millisecond || el > 2*time.Second {
		t.Fatalf("a lone request took %v, want about MaxWait (20ms)", el)
	}
	if got := r.batchSizes(); !slices.Equal(got, []int{1}) {
		t.Fatalf("batch sizes %v, want [1]", got)
	}
}

func TestMaxBatchOneDisablesBatching(t *testing.T) {
	r := &recorder{}
	b := mustNew(t, Config{MaxBatch: 1, MaxWait: time.Hour, QueueSize: 64}, r.run)
	submitAll(t, b, 10)
	for _, s := range r.batchSizes() {
		if s != 1 {
			t.Fatalf("batch sizes %v, want all 1", r.batchSizes())
		}
	}
	if n := len(r.batchSizes()); n != 10 {
		t.Fatalf("%d batches, want 10", n)
	}
}

func TestWorkersRunConcurrently(t *testing.T) {
	var mu sync.Mutex
	running, peak := 0, 0
	release := make(chan struct{})
	run := func(ctx context.Context, reqs []int) ([]int, error) {
		mu.Lock()
		running++
		peak = max(peak, running)
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
		return reqs, nil
	}
	b := mustNew(t, Config{MaxBatch: 1, QueueSize: 8, Workers: 3}, run)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { _, _ = b.Submit(context.Background(), i) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		p := peak
		mu.Unlock()
		if p == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peak concurrency %d, want 3", p)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
}

func TestOverloadIsImmediate(t *testing.T) {
	r := &recorder{gate: make(chan struct{})}
	b := mustNew(t, Config{MaxBatch: 1, QueueSize: 2}, r.run)
	var wg sync.WaitGroup
	defer func() { close(r.gate); wg.Wait() }()
	// One request runs (blocked on the gate), two fill the queue.
	wg.Go(func() { _, _ = b.Submit(context.Background(), 0) })
	deadline := time.Now().Add(5 * time.Second)
	for len(r.batchSizes()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("first request never ran")
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i <= 2; i++ {
		wg.Go(func() { _, _ = b.Submit(context.Background(), i) })
	}
	waitQueued(t, b, 2)

	start := time.Now()
	_, err := b.Submit(context.Background(), 3)
	if el := time.Since(start); el > 50*time.Millisecond {
		t.Errorf("overload answer took %v, want it at once", el)
	}
	if !errors.Is(err, fault.KindOverloaded) || fault.ReasonOf(err) != ReasonQueueFull {
		t.Fatalf("Submit on a full queue = %v (kind %v), want overloaded/QUEUE_FULL", err, fault.KindOf(err))
	}
}

func TestExpiredRequestsAreNotComputed(t *testing.T) {
	r := &recorder{gate: make(chan struct{})}
	b := mustNew(t, Config{MaxBatch: 1, QueueSize: 8}, r.run)
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = b.Submit(context.Background(), 1) }) // occupies the worker
	waitQueued(t, b, 0)
	for len(r.batchSizes()) == 0 {
		time.Sleep(time.Millisecond)
	}

	// A request that times out while queued leaves the queue and is never run.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.Submit(ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit with a short deadline = %v, want DeadlineExceeded", err)
	}
	if n := b.Len(); n != 0 {
		t.Fatalf("expired request still queued (%d waiting)", n)
	}
	// A request whose ctx is already done is refused before queueing.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if _, err := b.Submit(done, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit with a done ctx = %v, want Canceled", err)
	}
	wg.Go(func() { _, _ = b.Submit(context.Background(), 4) })
	waitQueued(t, b, 1)
	close(r.gate)
	wg.Wait()
	if got := r.computed(); !slices.Equal(got, []int{1, 4}) {
		t.Fatalf("computed %v, want [1 4]: expired requests must be skipped", got)
	}
}

func TestDropDoneSkipsCancelledBeforeCompute(t *testing.T) {
	// The dispatcher's own check, for a request cancelled after it was taken from
	// the queue but before its batch ran.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a := &item[int, int]{ctx: ctx, req: 1, done: make(chan result[int], 1)}
	live := &item[int, int]{ctx: context.Background(), req: 2, done: make(chan result[int], 1)}
	got := dropDone([]*item[int, int]{a, live})
	if len(got) != 1 || got[0] != live {
		t.Fatalf("dropDone kept %d items, want only the live one", len(got))
	}
	if r := <-a.done; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("dropped item answered %v, want Canceled", r.err)
	}
}

func TestBatchCtxCancelledWhenAllCallersLeave(t *testing.T) {
	cancelled := make(chan struct{})
	started := make(chan struct{})
	run := func(ctx context.Context, reqs []int) ([]int, error) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return nil, ctx.Err()
	}
	b := mustNew(t, Config{MaxBatch: 1, QueueSize: 1}, run)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := b.Submit(ctx, 1); errc <- err }()
	<-started
	cancel()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("batch ctx not cancelled after its only caller left")
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit = %v, want Canceled", err)
	}
}

func TestKeyBatchesOnlyEqualKeys(t *testing.T) {
	var mu sync.Mutex
	var batches [][]string
	run := func(ctx context.Context, reqs []string) ([]string, error) {
		mu.Lock()
		batches = append(batches, slices.Clone(reqs))
		mu.Unlock()
		return reqs, nil
	}
	key := func(s string) string { return s[:1] }
	b := mustNew(t, Config{MaxBatch: 8, MaxWait: 50 * time.Millisecond, QueueSize: 16, Workers: 1}, run, WithKey(key))
	var wg sync.WaitGroup
	for _, s := range []string{"a1", "b1", "a2", "b2", "a3"} {
		wg.Go(func() {
			if got, err := b.Submit(context.Background(), s); err != nil || got != s {
				t.Errorf("Submit(%q) = %q, %v", s, got, err)
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, batch := range batches {
		for _, s := range batch {
			if s[0] != batch[0][0] {
				t.Fatalf("batch %v mixes keys", batch)
			}
		}
		total += len(batch)
	}
	if total != 5 {
		t.Fatalf("%d requests computed, want 5", total)
	}
}

// TestBatchLimitCapsBatchesByTheirHead: WithBatchLimit bounds each batch by
// its first request (clamped to [1, MaxBatch]); requests over the limit wait
// for the next batch and nothing is lost.
func TestBatchLimitCapsBatchesByTheirHead(t *testing.T) {
	gate, held := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var batches [][]string
	run := func(ctx context.Context, reqs []string) ([]string, error) {
		if reqs[0] == "hold" {
			close(held)
			<-gate
		}
		mu.Lock()
		batches = append(batches, slices.Clone(reqs))
		mu.Unlock()
		return reqs, nil
	}
	limits := map[byte]int{'a': 2, 'b': 100, 'c': 0, 'h': 1}
	b := mustNew(t, Config{MaxBatch: 4, MaxWait: 5 * time.Millisecond, QueueSize: 32, Workers: 1}, run,
		WithKey(func(s string) string { return s[:1] }),
		WithBatchLimit(func(s string) int { return limits[s[0]] }))
	var closeGate sync.Once
	release := func() { closeGate.Do(func() { close(gate) }) }
	t.Cleanup(release) // before the batcher's Close, even when the test fails early
	var wg sync.WaitGroup
	submit := func(s string) {
		wg.Go(func() {
			if got, err := b.Submit(context.Background(), s); err != nil || got != s {
				t.Errorf("Submit(%q) = %q, %v", s, got, err)
			}
		})
	}
	submit("hold") // occupies the only worker while the others queue
	<-held
	reqs := []string{"a1", "a2", "a3", "a4", "a5", "b1", "b2", "b3", "b4", "b5", "c1", "c2"}
	for _, s := range reqs {
		submit(s)
	}
	waitQueued(t, b, len(reqs))
	release()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	want := map[byte]int{'a': 2, 'b': 4, 'c': 1, 'h': 1}
	total := 0
	for _, batch := range batches {
		if len(batch) > want[batch[0][0]] {
			t.Errorf("batch %v is larger than its limit %d", batch, want[batch[0][0]])
		}
		total += len(batch)
	}
	if total != len(reqs)+1 {
		t.Errorf("%d requests computed, want %d", total, len(reqs)+1)
	}
	// Everything was queued before the worker freed up, so full batches formed
	// at once and only the remainders ran short.
	sizes := map[byte][]int{}
	for _, batch := range batches {
		sizes[batch[0][0]] = append(sizes[batch[0][0]], len(batch))
	}
	for k, want := range map[byte][]int{'a': {1, 2, 2}, 'b': {1, 4}, 'c': {1, 1}} {
		got := slices.Sorted(slices.Values(sizes[k]))
		if !slices.Equal(got, want) {
			t.Errorf("key %c: batch sizes %v, want %v (batches %v)", k, got, want, batches)
		}
	}
}

func TestRunErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		run  RunFunc[int, int]
		want string
	}{
		{"error", func(context.Context, []int) ([]int, error) { return nil, boom }, "boom"},
		{"wrong count", func(context.Context, []int) ([]int, error) { return nil, nil }, "returned 0 responses for 1 requests"},
		{"panic", func(context.Context, []int) ([]int, error) { panic("kaput") }, "run panicked: kaput"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustNew(t, Config{MaxBatch: 1, QueueSize: 1}, tt.run)
			_, err := b.Submit(context.Background(), 1)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Submit = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestCloseDrainsQueue(t *testing.T) {
	r := &recorder{gate: make(chan struct{})}
	b, err := New(Config{MaxBatch: 2, MaxWait: time.Hour, QueueSize: 8}, r.run)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make(chan error, 3)
	for i := range 3 {
		wg.Go(func() { _, err := b.Submit(context.Background(), i); results <- err })
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(r.batchSizes()) == 0 || b.Len() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("want one running batch of 2 and one queued request; batches %v, queued %d", r.batchSizes(), b.Len())
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close(context.Background()) }()
	// After Close begins, new requests are refused...
	deadline = time.Now().Add(5 * time.Second)
	for {
		// A short deadline: a Submit that races ahead of Close queues and must
		// not block the test.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		_, err := b.Submit(ctx, 99)
		cancel()
		if errors.Is(err, fault.KindUnavailable) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Submit after Close = %v, want unavailable", err)
		}
		time.Sleep(time.Millisecond)
	}
	// ...and the queued one still runs, without waiting for MaxWait.
	close(r.gate)
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Errorf("queued request failed during a drain: %v", err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

func TestCloseWhileBusyGivesUp(t *testing.T) {
	r := &recorder{gate: make(chan struct{})} // never opened: the batch runs until its ctx ends
	b, err := New(Config{MaxBatch: 1, QueueSize: 8}, r.run)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make(chan error, 3)
	for i := range 3 {
		wg.Go(func() { _, err := b.Submit(context.Background(), i); results <- err })
	}
	waitQueued(t, b, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := b.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	wg.Wait()
	close(results)
	var aborted, unavailable int
	for err := range results {
		switch {
		case errors.Is(err, context.Canceled):
			aborted++ // the running batch saw its ctx cancelled
		case errors.Is(err, fault.KindUnavailable):
			unavailable++
		default:
			t.Errorf("unexpected result %v", err)
		}
	}
	if aborted != 1 || unavailable != 2 {
		t.Fatalf("aborted %d, unavailable %d; want 1 and 2", aborted, unavailable)
	}
}

type countingObserver struct {
	mu        sync.Mutex
	maxDepth  int
	lastDepth int
	sizes     []int
}

func (o *countingObserver) QueueDepth(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.maxDepth = max(o.maxDepth, n)
	o.lastDepth = n
}

func (o *countingObserver) BatchSize(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sizes = append(o.sizes, n)
}

func TestObserver(t *testing.T) {
	o := &countingObserver{}
	r := &recorder{gate: make(chan struct{})}
	b := mustNew(t, Config{MaxBatch: 3, MaxWait: time.Hour, QueueSize: 8}, r.run, WithObserver[int](o))
	done := make(chan struct{})
	go func() { defer close(done); submitAll(t, b, 3) }()
	close(r.gate)
	<-done
	o.mu.Lock()
	defer o.mu.Unlock()
	if !slices.Equal(o.sizes, []int{3}) || o.maxDepth != 3 || o.lastDepth != 0 {
		t.Fatalf("observer saw sizes %v, max depth %d, last depth %d; want [3], 3, 0", o.sizes, o.maxDepth, o.lastDepth)
	}
}

func BenchmarkSubmit(b *testing.B) {
	for _, maxBatch := range []int{1, 8} {
		b.Run(fmt.Sprintf("maxbatch=%d", maxBatch), func(b *testing.B) {
			run := func(ctx context.Context, reqs []int) ([]int, error) { return reqs, nil }
			bt, err := New(Config{MaxBatch: maxBatch, MaxWait: 100 * time.Microsecond, QueueSize: 1024}, run)
			if err != nil {
				b.Fatal(err)
			}
			defer bt.Close(context.Background())
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := bt.Submit(context.Background(), 1); err != nil {
						b.Error(err)
					}
				}
			})
		})
	}
}
