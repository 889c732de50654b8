package downstream

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// WatchReady reports through set whether every one of conns can take calls
// now, each time that changes, until ctx ends; it calls set(false) first.
//
// A connection dialled with client-side health checking (platform client's
// WithHealthCheck) is READY only while at least one of its backends is
// reachable and reports SERVING, so "conn READY" is "a healthy replica of its
// pool exists" (the gateway watches each pool on its own). A connection that went IDLE (no calls for
// gRPC's idle timeout) is asked to reconnect, so an unused gateway does not
// report itself down. WatchReady returns once all of its goroutines have.
func WatchReady(ctx context.Context, set func(bool), conns ...*grpc.ClientConn) {
	var (
		mu      sync.Mutex
		ready   = make([]bool, len(conns))
		last    = false
		changed = func(i int, ok bool) {
			mu.Lock()
			defer mu.Unlock()
			ready[i] = ok
			all := true
			for _, r := range ready {
				all = all && r
			}
			if all != last {
				last = all
				set(all)
			}
		}
		wg sync.WaitGroup
	)
	set(false)
	for i, conn := range conns {
		wg.Go(func() {
			for {
				s := conn.GetState()
				if s == connectivity.Idle {
					conn.Connect()
				}
				changed(i, s == connectivity.Ready)
				if !conn.WaitForStateChange(ctx, s) {
					return // ctx ended
				}
			}
		})
	}
	wg.Wait()
}
