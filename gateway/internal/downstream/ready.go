package downstream

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// Pool is one downstream pool the gateway watches, named as in logs and
// metrics.
type Pool struct {
	Name string
	Conn *grpc.ClientConn
	// Required: the default pipeline needs it, so it takes part in the
	// gateway's readiness. An optional pool's state is reported, nothing more.
	Required bool
}

// WatchReady follows pools until ctx ends and returns once all of its
// goroutines have. It reports through pool whether each one can take calls,
// false for every pool at once and then each time that changes; and through
// ready the gateway's readiness, every required pool able to take calls, each
// time that changes (it starts false, so the first report is a true). Both
// are called with one lock held, so their reports arrive in order.
//
// A connection dialled with client-side health checking (platform client's
// WithHealthCheck) is READY only while at least one of its backends is
// reachable and reports SERVING, so "conn READY" is "a healthy replica of its
// pool exists". A connection that went IDLE (no calls for gRPC's idle
// timeout) is asked to reconnect, so an unused gateway does not report itself
// down.
func WatchReady(ctx context.Context, pools []Pool, pool func(name string, ok bool), ready func(ok bool)) {
	var (
		mu       sync.Mutex
		up       = make([]bool, len(pools))
		reported = make([]bool, len(pools))
		all      = false
	)
	changed := func(i int, ok bool) {
		mu.Lock()
		defer mu.Unlock()
		if reported[i] && up[i] == ok {
			return
		}
		up[i], reported[i] = ok, true
		pool(pools[i].Name, ok)
		now := true
		for j, p := range pools {
			now = now && (up[j] || !p.Required)
		}
		if now != all {
			all = now
			ready(all)
		}
	}
	for i := range pools {
		changed(i, false)
	}
	var wg sync.WaitGroup
	for i, p := range pools {
		wg.Go(func() {
			for {
				s := p.Conn.GetState()
				if s == connectivity.Idle {
					p.Conn.Connect()
				}
				changed(i, s == connectivity.Ready)
				if !p.Conn.WaitForStateChange(ctx, s) {
					return // ctx ended
				}
			}
		})
	}
	wg.Wait()
}
