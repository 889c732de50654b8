package downstream

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/hirez-ml/hirez/platform/client"
)

// healthReplica is a real gRPC server on loopback TCP with only the standard
// health service, for the client-side health checks of a pool's connection.
func healthReplica(t *testing.T, service string) (addr string, set func(serving bool)) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, hs := grpc.NewServer(), health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	set = func(serving bool) {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if serving {
			st = healthpb.HealthCheckResponse_SERVING
		}
		hs.SetServingStatus(service, st)
	}
	set(false)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String(), set
}

// TestWatchReady: every pool is reported down at once, then each change of
// each pool; the readiness turns true only once every required pool is up,
// an optional pool never moves it, and WatchReady returns when ctx ends.
func TestWatchReady(t *testing.T) {
	const svc = "hirez.v1.UpscalerService"
	var pools []Pool
	sets := map[string]func(bool){}
	for _, p := range []struct {
		name     string
		required bool
	}{{"generator", true}, {"upscaler", true}, {"upsampler", false}} {
		addr, set := healthReplica(t, svc)
		conn, err := client.Dial(addr, client.WithHealthCheck(svc))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		pools = append(pools, Pool{Name: p.name, Conn: conn, Required: p.required})
		sets[p.name] = set
	}

	var (
		mu     sync.Mutex
		events []string
	)
	record := func(e string) { mu.Lock(); defer mu.Unlock(); events = append(events, e) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchReady(ctx, pools,
			func(name string, ok bool) { record(fmt.Sprintf("%s %v", name, ok)) },
			func(ok bool) { record(fmt.Sprintf("ready %v", ok)) })
	}()
	// wait waits for events to be want exactly (up to 15 s: a reconnect
	// backoff is 1 s and grows).
	wait := func(step string, want ...string) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			got := slices.Clone(events)
			mu.Unlock()
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: events %q, want %q", step, got, want)
			}
		}
	}

	history := []string{"generator false", "upscaler false", "upsampler false"}
	wait("start", history...)
	step := func(name string, serving bool, then ...string) {
		t.Helper()
		sets[name](serving)
		history = append(history, then...)
		wait(fmt.Sprintf("%s SERVING=%v", name, serving), history...)
	}
	step("generator", true, "generator true")
	step("upsampler", true, "upsampler true")
	step("upscaler", true, "upscaler true", "ready true")
	step("upsampler", false, "upsampler false")
	step("generator", false, "generator false", "ready false")
	step("generator", true, "generator true", "ready true")

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchReady did not return after ctx ended")
	}
}
