// Package soak is a load test of a running gateway (issue 15): it measures
// the stack's capacity with one client, then drives a multiple of it from
// many clients for a while and checks the goals of admission under load —
// no request fails after its first image, every admitted request completes,
// admitted requests' p99 latency stays within a ratio of the unloaded p99,
// and no serving process passes its Kubernetes memory limit. It prints what
// it sees every few seconds and at the end. gateway/cmd/soak is its
// command (make soak); gateway/e2e runs it briefly against scripts/up.sh.
package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/platform/rpcerr"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// Config is one soak run.
type Config struct {
	Gateway      string        // gRPC address of the gateway (host:port)
	Duration     time.Duration // of the loaded phase
	Calibrate    time.Duration // of the one-client phase that measures capacity
	Factor       float64       // offered load as a multiple of the measured capacity
	Clients      int           // client identities (connections from their own loopback address)
	Mix          Mix           // the requests asked for
	Deadline     time.Duration // of each call
	GiveUp       time.Duration // a refused request is retried until this long after it arrived
	Interval     time.Duration // between progress reports
	LatencyGoal  float64       // admitted p99 at most this × the unloaded p99
	Procs        []Proc        // serving processes whose peak RSS is checked
	Limits       map[string]int64
	Seed         uint64 // of the arrivals and the mix
	Out          io.Writer
	BindLoopback bool // give each client its own 127.0.0.x source address (the gateway's fairness key is the peer host)
}

// Defaults are the command's defaults.
var Defaults = Config{
	Duration: 10 * time.Minute, Calibrate: 30 * time.Second, Factor: 4, Clients: 32,
	Deadline: 60 * time.Second, GiveUp: 60 * time.Second, Interval: 10 * time.Second, LatencyGoal: 2,
	Seed: 1, BindLoopback: true,
}

// Validate reports settings no run can use.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %v", name, d))
		}
	}
	if c.Gateway == "" {
		errs = append(errs, errors.New("no gateway address"))
	}
	positive("duration", c.Duration)
	positive("calibration time", c.Calibrate)
	positive("deadline", c.Deadline)
	positive("give-up time", c.GiveUp)
	positive("report interval", c.Interval)
	if c.Factor <= 0 || c.LatencyGoal <= 0 {
		errs = append(errs, fmt.Errorf("load factor (%v) and latency goal (%v) must be positive", c.Factor, c.LatencyGoal))
	}
	if c.Clients < 1 || c.Clients > 200 {
		errs = append(errs, fmt.Errorf("clients must be 1 to 200, got %d", c.Clients))
	}
	if len(c.Mix) == 0 {
		errs = append(errs, errors.New("empty request mix"))
	}
	return errors.Join(errs...)
}

// Capacity is what one client got from the idle stack.
type Capacity struct {
	Requests     int
	Elapsed      time.Duration
	P50, P99     time.Duration
	RequestsPerS float64
	ImagesPerS   float64
}

// Memory is one process's peak RSS against its limit.
type Memory struct {
	Proc
	Peak, Limit int64
	Exited      bool // gone before the end (crashed, or restarted by its supervisor)
}

// Result is what a run measured.
type Result struct {
	Unloaded  Capacity
	Offered   float64 // new requests per second in the loaded phase
	Arrived   int     // requests that arrived
	Attempts  int     // calls, retries included
	Codes     map[codes.Code]int
	OK        int            // requests that got every image
	Delivered int            // images received, in every call
	GaveUp    int            // requests still refused at the door when their give-up time came (or the run ended)
	MidStream int            // calls that failed after their first image
	Failed    int            // admitted calls that failed before their first image (not a refusal at the door)
	Failures  map[string]int // the failed calls' errors ("after the first image: CODE: message"), counted
	P50, P99  time.Duration
	Memory    []Memory
	Elapsed   time.Duration
	Goal      float64 // the latency goal ratio
}

// LatencyRatio is the admitted p99 over the unloaded p99.
func (r *Result) LatencyRatio() float64 {
	if r.Unloaded.P99 <= 0 {
		return 0
	}
	return float64(r.P99) / float64(r.Unloaded.P99)
}

// Missed lists the goals the run missed, in words; empty when all held.
func (r *Result) Missed() []string {
	var m []string
	if r.MidStream > 0 {
		m = append(m, fmt.Sprintf("%d calls failed after their first image (goal 0)", r.MidStream))
	}
	if r.Failed > 0 {
		m = append(m, fmt.Sprintf("%d admitted calls failed before their first image (goal: every admitted request completes)", r.Failed))
	}
	if r.OK == 0 {
		m = append(m, "no request got its images")
	}
	if ratio := r.LatencyRatio(); ratio > r.Goal {
		m = append(m, fmt.Sprintf("admitted p99 %v is %.2f× the unloaded p99 %v (goal ≤ %g×)", r.P99.Round(time.Millisecond), ratio, r.Unloaded.P99.Round(time.Millisecond), r.Goal))
	}
	for _, mem := range r.Memory {
		if mem.Peak > mem.Limit {
			m = append(m, fmt.Sprintf("%s peaked at %s, over its limit of %s", mem.Name, mib(mem.Peak), mib(mem.Limit)))
		}
		if mem.Exited {
			m = append(m, fmt.Sprintf("%s (pid %d) exited during the soak", mem.Name, mem.PID))
		}
	}
	return m
}

// Run calibrates, then soaks; it returns what it measured, or an error when
// it could not run (unreachable gateway, a failing calibration, an unknown
// process). ctx ending stops the run early; the result so far is returned
// with ctx's error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	mems := make([]Memory, len(cfg.Procs))
	for i, p := range cfg.Procs {
		limit, err := LimitFor(p, cfg.Limits)
		if err != nil {
			return nil, err
		}
		mems[i] = Memory{Proc: p, Limit: limit}
	}
	conns, err := dialClients(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x50a4))

	fmt.Fprintf(out, "soak: measuring capacity for %v with one client (mix %s)\n", cfg.Calibrate, cfg.Mix)
	unloaded, err := calibrate(ctx, cfg, pb.NewGatewayServiceClient(conns[0]), rng)
	if err != nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	fmt.Fprintf(out, "soak: unloaded: %d requests in %v: %.2f requests/s, %.1f images/s; p50 %v, p99 %v\n",
		unloaded.Requests, unloaded.Elapsed.Round(100*time.Millisecond), unloaded.RequestsPerS, unloaded.ImagesPerS,
		unloaded.P50.Round(time.Millisecond), unloaded.P99.Round(time.Millisecond))

	s := &soak{cfg: cfg, res: &Result{Unloaded: unloaded, Goal: cfg.LatencyGoal, Codes: map[codes.Code]int{}, Failures: map[string]int{}, Memory: mems}}
	s.res.Offered = cfg.Factor * unloaded.RequestsPerS
	fmt.Fprintf(out, "soak: offering %.2f requests/s (%g× capacity) from %d clients for %v; refused requests retry after the RetryInfo delay for up to %v\n",
		s.res.Offered, cfg.Factor, cfg.Clients, cfg.Duration, cfg.GiveUp)
	err = s.drive(ctx, conns, rng, out)
	if err != nil {
		fmt.Fprintf(out, "soak: interrupted (%v): the result so far, goals not judged\n", err)
		s.report(out, false)
		return s.res, err
	}
	s.report(out, true)
	return s.res, nil
}

// dialClients opens one connection per client; with BindLoopback and a
// loopback gateway each comes from its own 127.0.0.x address, so that the
// gateway sees cfg.Clients clients, as it would in production.
func dialClients(cfg Config) ([]*grpc.ClientConn, error) {
	host, _, err := net.SplitHostPort(cfg.Gateway)
	if err != nil {
		return nil, fmt.Errorf("gateway address %q: want host:port", cfg.Gateway)
	}
	ip := net.ParseIP(host)
	bind := cfg.BindLoopback && ip != nil && ip.To4() != nil && ip.IsLoopback()
	var conns []*grpc.ClientConn
	for i := range cfg.Clients {
		opts := []grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(pb.MaxMessageBytes)),
		}
		if bind {
			local := &net.TCPAddr{IP: net.IPv4(127, 0, byte(i/250), byte(2+i%250))}
			opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				d := net.Dialer{LocalAddr: local}
				return d.DialContext(ctx, "tcp", addr)
			}))
		}
		c, err := grpc.NewClient("passthrough:///"+cfg.Gateway, opts...)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, fmt.Errorf("dial %s: %w", cfg.Gateway, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// calibrate runs one request of each class to warm up (connections,
// oneDNN's primitives), then requests one after another for cfg.Calibrate
// and at least 5 of them.
func calibrate(ctx context.Context, cfg Config, c pb.GatewayServiceClient, rng *rand.Rand) (Capacity, error) {
	for _, cl := range cfg.Mix {
		if _, _, err := call(ctx, c, cfg.Deadline, cl, rng.Int64N(1<<40)+1, nil); err != nil {
			return Capacity{}, fmt.Errorf("a %s request: %w", cl, err)
		}
	}
	var (
		lat    []time.Duration
		images int
		start  = time.Now()
	)
	for time.Since(start) < cfg.Calibrate || len(lat) < 5 {
		cl := cfg.Mix.pick(rng)
		t0 := time.Now()
		if _, _, err := call(ctx, c, cfg.Deadline, cl, rng.Int64N(1<<40)+1, nil); err != nil {
			return Capacity{}, fmt.Errorf("a %s request: %w", cl, err)
		}
		lat = append(lat, time.Since(t0))
		images += cl.Count
	}
	el := time.Since(start)
	slices.Sort(lat)
	return Capacity{Requests: len(lat), Elapsed: el, P50: quantile(lat, 0.5), P99: quantile(lat, 0.99),
		RequestsPerS: float64(len(lat)) / el.Seconds(), ImagesPerS: float64(images) / el.Seconds()}, nil
}

// call makes one GenerateImages call and reads it to the end: the images it
// got and its error (nil when the stream ended cleanly with every image).
// Each image received adds one to delivered, when not nil.
func call(ctx context.Context, c pb.GatewayServiceClient, deadline time.Duration, cl Class, seed int64, delivered *atomic.Int64) (images int, took time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	start := time.Now()
	stream, err := c.GenerateImages(ctx, &pb.GenerateImagesRequest{Count: int32(cl.Count), Size: int32(cl.Size), Seed: seed})
	if err != nil {
		return 0, time.Since(start), err
	}
	for {
		_, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return images, time.Since(start), err
		}
		images++
		if delivered != nil {
			delivered.Add(1)
		}
	}
	if images != cl.Count {
		return images, time.Since(start), fmt.Errorf("the stream ended after %d of %d images", images, cl.Count)
	}
	return images, time.Since(start), nil
}

// soak is the loaded phase's state.
type soak struct {
	cfg   Config
	start time.Time

	mu        sync.Mutex
	res       *Result
	admitted  []time.Duration // latency of every admitted call that completed
	delivered atomic.Int64    // images received so far, by any call
	inFlight  int             // requests arrived and not yet settled
}

// drive offers requests at res.Offered per second (Poisson arrivals) for
// cfg.Duration, each from the next client in turn, reporting every
// cfg.Interval, then waits for the requests in flight to settle. No retry
// starts after the loaded phase: a request still refused then gave up.
func (s *soak) drive(ctx context.Context, conns []*grpc.ClientConn, rng *rand.Rand, out io.Writer) error {
	clients := make([]pb.GatewayServiceClient, len(conns))
	for i, c := range conns {
		clients[i] = pb.NewGatewayServiceClient(c)
	}
	loadCtx, stopLoad := context.WithTimeout(ctx, s.cfg.Duration)
	defer stopLoad()
	s.start = time.Now()
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	// VmHWM only grows while a process lives: sampled each second, a
	// process that exits between reports keeps its peak.
	sample := time.NewTicker(time.Second)
	defer sample.Stop()
	var wg sync.WaitGroup
	next := time.Now()
	for i := 0; ; i++ {
		next = next.Add(time.Duration(rng.ExpFloat64() / s.res.Offered * float64(time.Second)))
		wait := time.NewTimer(time.Until(next))
	waiting:
		for {
			select {
			case <-wait.C:
				break waiting
			case <-tick.C:
				s.report(out, false)
			case <-sample.C:
				s.mu.Lock()
				s.sampleMemory()
				s.mu.Unlock()
			case <-loadCtx.Done():
				wait.Stop()
				wg.Wait()
				return ctx.Err()
			}
		}
		cl, seed, client := s.cfg.Mix.pick(rng), rng.Int64N(1<<40)+1, clients[i%len(clients)]
		s.mu.Lock()
		s.res.Arrived++
		s.inFlight++
		s.mu.Unlock()
		wg.Go(func() { s.request(loadCtx, ctx, client, cl, seed) })
	}
}

// request is one client request: calls until it is served, fails, or has
// been refused until its give-up time, waiting the refusal's RetryInfo
// delay (with up to 10 % jitter, so that refused clients do not return in
// step) between calls. New calls stop with loadCtx; calls in flight run on
// ctx to their end.
func (s *soak) request(loadCtx, ctx context.Context, c pb.GatewayServiceClient, cl Class, seed int64) {
	giveUp := time.Now().Add(s.cfg.GiveUp)
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	for {
		images, took, err := call(ctx, c, s.cfg.Deadline, cl, seed, &s.delivered)
		if ctx.Err() != nil {
			return // the run was interrupted: the call's end is ours, not the stack's
		}
		st := status.Convert(err)
		delay, hinted := rpcerr.RetryDelay(st)
		refused := images == 0 && st.Code() == codes.ResourceExhausted && hinted
		s.mu.Lock()
		s.res.Attempts++
		s.res.Codes[st.Code()]++
		switch {
		case err == nil:
			s.res.OK++
			s.admitted = append(s.admitted, took)
		case refused:
		case images > 0:
			s.res.MidStream++
			s.res.Failures[fmt.Sprintf("after the first image: %s: %s", codeName(st.Code()), st.Message())]++
		default:
			s.res.Failed++
			s.res.Failures[fmt.Sprintf("before the first image: %s: %s", codeName(st.Code()), st.Message())]++
		}
		s.mu.Unlock()
		if !refused {
			return
		}
		delay += time.Duration(rand.Int64N(int64(delay)/10 + 1))
		if time.Now().Add(delay).After(giveUp) || !sleep(loadCtx, delay) {
			s.mu.Lock()
			s.res.GaveUp++
			s.mu.Unlock()
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// report prints the outcomes so far, the latency of admitted calls against
// the unloaded p99 and each process's peak RSS against its limit; final
// adds the goals.
func (s *soak) report(out io.Writer, final bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.res
	r.Elapsed = time.Since(s.start)
	lat := slices.Clone(s.admitted)
	slices.Sort(lat)
	r.P50, r.P99 = quantile(lat, 0.5), quantile(lat, 0.99)
	s.sampleMemory()

	head := fmt.Sprintf("soak %v/%v", r.Elapsed.Round(time.Second), s.cfg.Duration)
	if final {
		head = fmt.Sprintf("soak: result after %v", r.Elapsed.Round(time.Second))
	}
	fmt.Fprintf(out, "%s: %d requests arrived, %d in flight; %d got every image, %d were refused until they gave up; %d calls: %s\n",
		head, r.Arrived, s.inFlight, r.OK, r.GaveUp, r.Attempts, formatCodes(r.Codes))
	r.Delivered = int(s.delivered.Load())
	fmt.Fprintf(out, "  failed after the first image: %d; admitted and failed before it: %d; %.1f images/s delivered (unloaded, one client: %.1f)\n",
		r.MidStream, r.Failed, float64(r.Delivered)/r.Elapsed.Seconds(), r.Unloaded.ImagesPerS)
	shown := 0
	for msg, n := range r.Failures {
		if shown++; shown > 5 {
			fmt.Fprintf(out, "  … and %d other failures\n", len(r.Failures)-5)
			break
		}
		fmt.Fprintf(out, "  failed %d× %s\n", n, msg)
	}
	if len(lat) > 0 {
		fmt.Fprintf(out, "  admitted calls: p50 %v, p99 %v = %.2f× the unloaded p99 of %v (goal ≤ %g×)\n",
			r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.LatencyRatio(), r.Unloaded.P99.Round(time.Millisecond), r.Goal)
	}
	if len(r.Memory) > 0 {
		parts := make([]string, len(r.Memory))
		for i, m := range r.Memory {
			parts[i] = fmt.Sprintf("%s %s of %s", m.Name, mib(m.Peak), mib(m.Limit))
			if m.Exited {
				parts[i] += " (exited)"
			}
		}
		fmt.Fprintf(out, "  peak RSS: %s\n", strings.Join(parts, ", "))
	}
	if !final {
		return
	}
	if missed := r.Missed(); len(missed) > 0 {
		for _, m := range missed {
			fmt.Fprintf(out, "soak: GOAL MISSED: %s\n", m)
		}
	} else {
		fmt.Fprintln(out, "soak: every goal held")
	}
}

// sampleMemory reads each process's peak RSS, and notes one that has gone.
// s.mu held.
func (s *soak) sampleMemory() {
	for i := range s.res.Memory {
		m := &s.res.Memory[i]
		if peak, alive := PeakRSS(m.PID); alive && !m.Exited {
			m.Peak = max(m.Peak, peak)
		} else {
			m.Exited = true // a new process on a reused pid is not the one watched
		}
	}
}

// quantile of sorted durations (nearest rank); 0 for none.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func formatCodes(m map[codes.Code]int) string {
	if len(m) == 0 {
		return "none yet"
	}
	keys := make([]codes.Code, 0, len(m))
	for c := range m {
		keys = append(keys, c)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, c := range keys {
		parts[i] = fmt.Sprintf("%s %d", codeName(c), m[c])
	}
	return strings.Join(parts, ", ")
}

// codeName is a code's canonical name (RESOURCE_EXHAUSTED) from its Go name
// (ResourceExhausted).
func codeName(c codes.Code) string {
	if c == codes.OK {
		return "OK"
	}
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
