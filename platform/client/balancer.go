package client

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/connectivity"
)

// BalancerName is the load-balancing policy Dial configures: round-robin
// over the ready replicas (gRPC's round_robin: endpointsharding over
// pickfirst children, with client-side health checks), plus what a caller
// needs to route around a replica that accepts calls and never answers (a
// stopped process, a wedged GPU) — which neither health checks nor
// keepalive see for tens of seconds:
//
//   - outlier ejection: a caller that saw a replica time out calls
//     Attempt.Eject, and the replica gets no calls for a while (1 s,
//     doubling on each ejection in a row up to 30 s; an answered call
//     resets the count). A replica that reconnects (restarted) is
//     un-ejected at once.
//   - retry elsewhere: Attempt.Avoid names a replica that the next try of
//     a call should not go to, if another is ready.
//
// When every ready replica is ejected or avoided, calls still go to them
// in turn: sending to a possibly slow replica beats failing every call.
const BalancerName = "hirez_round_robin"

// Ejection durations (see BalancerName).
const (
	ejectBase = time.Second
	ejectMax  = 30 * time.Second
)

// gRPC keeps balancers in a process-wide registry and looks them up by name
// in the service config, so the builder is registered once, on first Dial
// (not in init: nothing happens at import).
var registerBalancer = sync.OnceFunc(func() { balancer.Register(rrBuilder{}) })

// Attempt is one try of a call, shared between the caller and the picker
// through the call's context (WithAttempt).
type Attempt struct {
	// Avoid is the address of a replica not to pick if another is ready
	// (the one the previous try went to); "" avoids none.
	Avoid string

	mu   sync.Mutex
	addr string
	b    *rrBalancer
}

type attemptKey struct{}

// WithAttempt returns ctx carrying a, for one call on a connection made by
// Dial; the picker records in a which replica took the call.
func WithAttempt(ctx context.Context, a *Attempt) context.Context {
	return context.WithValue(ctx, attemptKey{}, a)
}

// Addr is the address of the replica the call went to, "" before a pick
// (or on a connection not made by Dial).
func (a *Attempt) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addr
}

// Eject stops calls to the replica that took this try, for a while (see
// BalancerName): the caller saw it time out.
func (a *Attempt) Eject() {
	if b, addr := a.picked(); b != nil {
		b.eject(addr)
	}
}

// Answered tells the balancer the replica answered, so that its next
// ejection starts again from the shortest.
func (a *Attempt) Answered() {
	if b, addr := a.picked(); b != nil {
		b.answered(addr)
	}
}

func (a *Attempt) picked() (*rrBalancer, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.b, a.addr
}

type rrBuilder struct{}

func (rrBuilder) Name() string { return BalancerName }

func (rrBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	b := &rrBalancer{ejected: map[string]*ejection{}, ready: map[string]bool{}}
	b.Balancer = endpointsharding.NewBalancer(&ccWrapper{ClientConn: cc, b: b}, opts, balancer.Get(pickfirst.Name).Build, endpointsharding.Options{})
	return b
}

type ejection struct {
	until time.Time
	count int // ejections in a row
}

type rrBalancer struct {
	balancer.Balancer

	mu      sync.Mutex
	ejected map[string]*ejection // by address
	ready   map[string]bool      // replicas that were READY at the last update
}

func (b *rrBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	// As round_robin: the pickfirst children listen to client-side health.
	return b.Balancer.UpdateClientConnState(balancer.ClientConnState{ResolverState: pickfirst.EnableHealthListener(s.ResolverState)})
}

func (b *rrBalancer) eject(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.ejected[addr]
	if e == nil {
		e = &ejection{}
		b.ejected[addr] = e
	}
	e.until = time.Now().Add(min(ejectBase<<e.count, ejectMax))
	e.count = min(e.count+1, 8)
}

func (b *rrBalancer) answered(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.ejected[addr]; e != nil && time.Now().After(e.until) {
		delete(b.ejected, addr)
	}
}

func (b *rrBalancer) isEjected(addr string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.ejected[addr]
	return e != nil && now.Before(e.until)
}

// ccWrapper sees the pickers endpointsharding builds and replaces them with
// ours, over the same ready children.
type ccWrapper struct {
	balancer.ClientConn
	b *rrBalancer
}

func (w *ccWrapper) UpdateState(s balancer.State) {
	b := w.b
	var ready []endpoint
	b.mu.Lock()
	now := map[string]bool{}
	for _, c := range endpointsharding.ChildStatesFromPicker(s.Picker) {
		if c.State.ConnectivityState != connectivity.Ready || len(c.Endpoint.Addresses) == 0 {
			continue
		}
		addr := c.Endpoint.Addresses[0].Addr
		now[addr] = true
		if !b.ready[addr] {
			delete(b.ejected, addr) // (re)connected: a new process, or one that came back
		}
		ready = append(ready, endpoint{addr: addr, picker: c.State.Picker})
	}
	b.ready = now
	b.mu.Unlock()
	if len(ready) > 0 {
		s.Picker = &picker{b: b, ready: ready, next: new(atomic.Uint32)}
	}
	w.ClientConn.UpdateState(s)
}

type endpoint struct {
	addr   string
	picker balancer.Picker
}

type picker struct {
	b     *rrBalancer
	ready []endpoint
	next  *atomic.Uint32
}

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	a, _ := info.Ctx.Value(attemptKey{}).(*Attempt)
	n := uint32(len(p.ready))
	start := p.next.Add(1)
	now := time.Now()
	chosen := &p.ready[start%n]
	var fallback *endpoint // ejected, but not avoided
	for i := range n {
		e := &p.ready[(start+i)%n]
		if a != nil && a.Avoid == e.addr {
			continue
		}
		if p.b.isEjected(e.addr, now) {
			if fallback == nil {
				fallback = e
			}
			continue
		}
		chosen, fallback = e, nil
		break
	}
	if fallback != nil {
		chosen = fallback
	}
	if a != nil {
		a.mu.Lock()
		a.addr, a.b = chosen.addr, p.b
		a.mu.Unlock()
	}
	return chosen.picker.Pick(info)
}
