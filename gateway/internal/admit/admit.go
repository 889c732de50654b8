// Package admit is the gateway's admission control: it decides at the door
// which GenerateImages requests the gateway takes, and paces the chains
// (one image's ×2 passes, encoding and send) of those it took, so that a
// request once accepted finishes.
//
//   - At the door (Admit), before any work and so before any image is sent,
//     a request is refused with fault.KindOverloaded and a retry hint when
//     the images already admitted and not yet finished (the backlog) leave
//     no room for it, or when its deadline ends before the backlog ahead of
//     it would drain. Nothing is ever refused later.
//   - Admitted requests run their chains through Ticket.Acquire: at most
//     MaxChains at once over the gateway (what its upscaler pool can take
//     without a full queue), at most RequestChains per request, and at most
//     MaxBytes of accounted memory. A chain holds its grant until its image
//     is sent, so a client that reads slowly (stream flow control) slows
//     only its own request.
//   - Waiting chains are granted round-robin across clients (one flow per
//     client key, FIFO within it), so a big request or a client with many
//     requests cannot starve a small one.
//
// The package knows nothing of gRPC (STYLE rule 3).
package admit

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hirez-ml/hirez/platform/fault"
)

// Reasons of the refusals, the ErrorInfo reasons clients may branch on.
const (
	ReasonBusy     = "GATEWAY_BUSY"
	ReasonDeadline = "DEADLINE_TOO_SHORT"
)

// Config bounds the work in flight.
type Config struct {
	MaxChains     int   // chains at once, over all requests
	RequestChains int   // chains at once per request
	MaxBytes      int64 // accounted bytes of the chains in flight
	MaxBacklog    int   // images admitted but not finished; a request beyond it is refused
	// MaxWait bounds, in time, how much later than on an idle gateway a new
	// request is forecast to finish; 0 turns the bound off. It is what keeps
	// the latency of admitted calls near the unloaded one under overload.
	MaxWait time.Duration
}

// Default is the configuration of the flags' defaults. MaxChains 64 keeps
// the gateway within one upscaler's queue (--queue-size 64); MaxBytes 128 MiB
// leaves room under the 512Mi Kubernetes limit for gRPC buffers and the
// runtime; MaxBacklog is four requests of the largest count.
var Default = Config{MaxChains: 64, RequestChains: 32, MaxBytes: 128 << 20, MaxBacklog: 1024}

// RegisterFlags defines the admission flags on fs and returns the Config
// they write into once fs is parsed.
func RegisterFlags(fs *flag.FlagSet) *Config {
	c := Default
	fs.IntVar(&c.MaxChains, "max-chains", c.MaxChains, "images in the upscaling pipeline at once, over all requests (keep it at or below the upscaler pool's queue)")
	fs.IntVar(&c.RequestChains, "request-chains", c.RequestChains, "images in the upscaling pipeline at once per request")
	fs.Int64Var(&c.MaxBytes, "max-inflight-bytes", c.MaxBytes, "accounted bytes of the images in flight (pixels, PNG, buffers); bounds the gateway's memory")
	fs.IntVar(&c.MaxBacklog, "max-backlog", c.MaxBacklog, "images admitted and not yet sent before new requests get RESOURCE_EXHAUSTED")
	fs.DurationVar(&c.MaxWait, "max-wait", c.MaxWait, "refuse a request (RESOURCE_EXHAUSTED) when the images ahead would make it finish more than this much later than on an idle gateway; 0: no bound")
	return &c
}

// Controller admits requests and grants their chains; build it with New.
type Controller struct {
	cfg Config
	now func() time.Time

	mu        sync.Mutex
	running   int
	bytes     int64
	peakBytes int64
	backlog   int
	admitted  int            // requests admitted and not Done
	shed      map[string]int // requests refused at the door, by reason
	flows     map[string]*flow
	ring      []*flow // flows with admitted requests, in round-robin order
	next      int     // ring index to serve first
	chainSecs float64 // moving average of a chain's duration, 0 until measured
	skew      float64 // moving average of requests' real ÷ forecast time (forecast.go)
	seq       uint64  // names the flows of requests without a client key
}

// flow is one client's turn: its admitted requests' waiting chains, FIFO.
// It stays in the ring while the client has a request admitted, so that
// the turns keep their order as chains come and go.
type flow struct {
	key     string
	tickets []*Ticket // admitted and not Done, in admission order
	waiters []*waiter
}

type waiter struct {
	t     *Ticket
	ready chan struct{} // closed once granted
}

// New returns a controller; fields of cfg that are not positive take
// Default's values.
func New(cfg Config) *Controller {
	if cfg.MaxChains <= 0 {
		cfg.MaxChains = Default.MaxChains
	}
	if cfg.RequestChains <= 0 {
		cfg.RequestChains = Default.RequestChains
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = Default.MaxBytes
	}
	if cfg.MaxBacklog <= 0 {
		cfg.MaxBacklog = Default.MaxBacklog
	}
	return &Controller{cfg: cfg, now: time.Now, flows: map[string]*flow{}, shed: map[string]int{}}
}

// Stats is a snapshot of the controller's accounting.
type Stats struct {
	Admitted     int            // requests admitted and not yet done
	Running      int            // chains holding a grant
	Waiting      int            // chains of admitted requests waiting for a grant
	Bytes        int64          // the running chains' accounted bytes
	PeakBytes    int64          // the most Bytes has been
	Backlog      int            // images admitted and not finished
	Shed         int            // requests refused at the door
	ShedByReason map[string]int // the same by reason (ReasonBusy, ReasonDeadline)
	ChainSeconds float64        // moving average of a chain's time, 0 until measured
	ForecastSkew float64        // the forecast's learnt error factor (forecast.go), 1 until measured
}

// Stats returns the current accounting.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{Admitted: c.admitted, Running: c.running, Bytes: c.bytes, PeakBytes: c.peakBytes, Backlog: c.backlog,
		ShedByReason: make(map[string]int, len(c.shed)), ChainSeconds: c.chainSecs, ForecastSkew: float64(c.expect(time.Second)) / float64(time.Second)}
	for _, f := range c.ring {
		s.Waiting += len(f.waiters)
	}
	for reason, n := range c.shed {
		s.Shed += n
		s.ShedByReason[reason] = n
	}
	return s
}

// Limits returns the configuration the controller runs with (Default's
// values in place of those New was given as not positive).
func (c *Controller) Limits() Config { return c.cfg }

// Ticket is one admitted request; call Done when it ends.
type Ticket struct {
	c          *Controller
	flow       *flow
	chainBytes int64
	deadline   time.Time // zero: none
	admitted   time.Time
	forecast   time.Duration // at admission, before skew; 0: none was made
	left       int           // images not finished, counted in the backlog
	running    int           // chains of this request holding a grant
}

// Admit admits a request of images images, each chain of which accounts
// chainBytes, from client (the fairness key; "" gives the request a flow of
// its own), or refuses it with fault.KindOverloaded and a retry hint. With
// images already admitted, a request is refused when the backlog is full,
// and, once chain times are measured, when the forecast of the round-robin
// grants (forecast.go) says that it would miss its own deadline, finish
// more than MaxWait later than on an idle gateway, or make a request
// admitted earlier miss its deadline. A request that finds the gateway idle
// is always admitted.
func (c *Controller) Admit(ctx context.Context, client string, images int, chainBytes int64) (*Ticket, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	dl, _ := ctx.Deadline()
	t := &Ticket{c: c, chainBytes: chainBytes, deadline: dl, admitted: c.now(), left: images}
	if client == "" {
		c.seq++
		client = fmt.Sprintf("\x00%d", c.seq) // a flow of its own: no client names start with NUL
	}
	if c.backlog > 0 {
		if c.backlog+images > c.cfg.MaxBacklog {
			c.shed[ReasonBusy]++
			return nil, fault.OverloadedRetry(ReasonBusy, c.drainTime(c.backlog),
				"the gateway is busy: %d images are queued ahead (at most %d); retry later", c.backlog, c.cfg.MaxBacklog)
		}
		if c.chainSecs > 0 {
			if err := c.checkForecast(t, c.flows[client]); err != nil {
				return nil, err
			}
		}
	} else if c.chainSecs > 0 {
		t.forecast = c.alone(images)
	}
	c.backlog += images
	c.admitted++
	f := c.flows[client]
	if f == nil {
		f = &flow{key: client}
		c.flows[client] = f
		c.ring = append(c.ring, f)
	}
	f.tickets = append(f.tickets, t)
	t.flow = f
	return t, nil
}

// checkForecast refuses t, not yet admitted, when admitting it into flow f
// (nil: a new flow) breaks a promise the forecast can see. Called with mu
// held.
func (c *Controller) checkForecast(t *Ticket, f *flow) error {
	now := c.now()
	with := c.forecast(t, f)
	t.forecast = with[t]
	need := c.expect(with[t])
	if !t.deadline.IsZero() && now.Add(need).After(t.deadline) {
		c.shed[ReasonDeadline]++
		return fault.OverloadedRetry(ReasonDeadline, c.drainTime(c.backlog),
			"the gateway is busy: %d images are queued ahead and %d images would take about %v, longer than the deadline allows; retry later or with a longer deadline",
			c.backlog, t.left, need.Round(100*time.Millisecond))
	}
	if wait := need - c.expect(c.alone(t.left)); c.cfg.MaxWait > 0 && wait > c.cfg.MaxWait {
		c.shed[ReasonBusy]++
		return fault.OverloadedRetry(ReasonBusy, c.drainTime(c.backlog),
			"the gateway is busy: %d images are queued ahead and would delay these %d by about %v (at most %v); retry later",
			c.backlog, t.left, wait.Round(100*time.Millisecond), c.cfg.MaxWait)
	}
	if late := c.madeLate(now, with); late > 0 {
		c.shed[ReasonBusy]++
		return fault.OverloadedRetry(ReasonBusy, c.drainTime(c.backlog),
			"the gateway is busy: taking %d more images now would make %d requests already accepted miss their deadlines; retry later",
			t.left, late)
	}
	return nil
}

// madeLate counts the admitted requests with a deadline that the forecast
// without the newcomer finishes in time and the forecast with it (with)
// does not. Requests already forecast late do not count: they would make
// the gateway refuse everything until they end. Called with mu held.
func (c *Controller) madeLate(now time.Time, with map[*Ticket]time.Duration) int {
	var without map[*Ticket]time.Duration
	late := 0
	for _, f := range c.ring {
		for _, t := range f.tickets {
			if t.deadline.IsZero() || t.left == 0 || !now.Add(c.expect(with[t])).After(t.deadline) {
				continue
			}
			if without == nil {
				without = c.forecast(nil, nil)
			}
			if !now.Add(c.expect(without[t])).After(t.deadline) {
				late++
			}
		}
	}
	return late
}

// drainTime is the retry hint: how long n images take at the measured chain
// rate with MaxChains in flight (Little's law), clamped to 1–30 s.
func (c *Controller) drainTime(n int) time.Duration {
	d := time.Duration(float64(n) * c.chainSecs / float64(c.cfg.MaxChains) * float64(time.Second))
	return min(max(d, time.Second), 30*time.Second)
}

// Acquire waits for a grant to run one chain: a global slot, a slot of this
// request and the chain's bytes, granted in round-robin order across clients.
// The returned release must be called once the chain's image is sent (or
// abandoned); it counts the image as finished. Acquire returns ctx's cause
// if ctx ends first.
func (t *Ticket) Acquire(ctx context.Context) (release func(), err error) {
	c := t.c
	c.mu.Lock()
	w := &waiter{t: t, ready: make(chan struct{})}
	f := t.flow
	f.waiters = append(f.waiters, w)
	c.dispatch()
	c.mu.Unlock()

	select {
	case <-w.ready:
	case <-ctx.Done():
		c.mu.Lock()
		select {
		case <-w.ready: // granted meanwhile: give it back
			c.mu.Unlock()
			t.release(0, false)
		default:
			f.remove(w)
			c.mu.Unlock()
		}
		return nil, context.Cause(ctx)
	}
	start := c.now()
	var once sync.Once
	return func() { once.Do(func() { t.release(c.now().Sub(start), true) }) }, nil
}

// release returns a grant; finished says a chain ran, for took.
func (t *Ticket) release(took time.Duration, finished bool) {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running--
	c.bytes -= t.chainBytes
	t.running--
	if finished {
		if t.left > 0 {
			t.left--
			c.backlog--
		}
		// A moving average over about the last 64 chains.
		if s := took.Seconds(); c.chainSecs == 0 {
			c.chainSecs = s
		} else {
			c.chainSecs += (s - c.chainSecs) / 64
		}
	}
	c.dispatch()
}

// Done ends the request, after its last Acquire has returned: its images
// not finished leave the backlog. Grants still held stay valid until
// released.
func (t *Ticket) Done() {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.left == 0 && t.forecast > 0 {
		c.learn(c.now().Sub(t.admitted), t.forecast)
	}
	c.backlog -= t.left
	t.left = 0
	if t.flow == nil {
		return // Done twice
	}
	c.admitted--
	f := t.flow
	t.flow = nil
	f.tickets = slices.DeleteFunc(f.tickets, func(x *Ticket) bool { return x == t })
	if len(f.tickets) > 0 || len(f.waiters) > 0 {
		return
	}
	delete(c.flows, f.key)
	for i, x := range c.ring {
		if x == f {
			c.ring = append(c.ring[:i], c.ring[i+1:]...)
			if i < c.next {
				c.next--
			}
			break
		}
	}
}

// dispatch grants waiting chains, one per flow in turn, while the limits
// allow. A chain whose bytes do not fit stops the round (rather than letting
// smaller ones pass), so that big images are not starved. Called with mu held.
func (c *Controller) dispatch() {
	for len(c.ring) > 0 && c.running < c.cfg.MaxChains {
		granted := false
		for range len(c.ring) {
			if c.next >= len(c.ring) {
				c.next = 0
			}
			f := c.ring[c.next]
			w := c.grantable(f)
			if w == nil {
				c.next++
				continue
			}
			if c.running > 0 && c.bytes+w.t.chainBytes > c.cfg.MaxBytes {
				return
			}
			c.running++
			c.bytes += w.t.chainBytes
			c.peakBytes = max(c.peakBytes, c.bytes)
			w.t.running++
			close(w.ready)
			f.remove(w)
			c.next++ // the next flow is served first
			granted = true
			break
		}
		if !granted {
			return
		}
	}
}

// grantable is f's first waiter whose request is below RequestChains.
func (c *Controller) grantable(f *flow) *waiter {
	for _, w := range f.waiters {
		if w.t.running < c.cfg.RequestChains {
			return w
		}
	}
	return nil
}

// remove takes w out of f's waiters.
func (f *flow) remove(w *waiter) {
	for i, x := range f.waiters {
		if x == w {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			return
		}
	}
}
