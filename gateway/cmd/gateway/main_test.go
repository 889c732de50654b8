package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/hirez-ml/hirez/platform/server"
	"github.com/hirez-ml/hirez/platform/servertest"
)

// replica is a real, bare gRPC server on loopback TCP with the standard
// health service: what the gateway's client-side health checks talk to.
type replica struct {
	*servertest.Bare
	health *health.Server
}

func startReplica(t *testing.T, service string, serving bool) *replica {
	t.Helper()
	r := &replica{health: health.NewServer()}
	r.set(service, serving)
	r.Bare = servertest.ServeBare(t, func(srv *grpc.Server) { healthpb.RegisterHealthServer(srv, r.health) })
	return r
}

func (r *replica) set(service string, serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	r.health.SetServingStatus(service, st)
}

// gateway is the gateway's real run on free loopback addresses; Cancel stops
// it as SIGTERM does.
type gateway struct {
	*servertest.Running
	grpcAddr, metricsAddr, httpAddr string
	health                          healthpb.HealthClient
}

// startGateway runs run with the addresses, a 2 s shutdown timeout and args
// (later flags win); cleanup stops it and checks its error.
func startGateway(t *testing.T, args ...string) *gateway {
	t.Helper()
	g := &gateway{grpcAddr: servertest.FreeAddr(t), metricsAddr: servertest.FreeAddr(t), httpAddr: servertest.FreeAddr(t)}
	g.Running = servertest.Go(t, func(ctx context.Context) error {
		return run(ctx, append([]string{"--grpc-addr", g.grpcAddr, "--metrics-addr", g.metricsAddr, "--http-addr", g.httpAddr,
			"--shutdown-timeout", "2s", "--log-level", "warn"}, args...))
	})
	g.health = healthpb.NewHealthClient(servertest.Dial(t, g.grpcAddr))
	return g
}

// TestHealthFollowsDownstreams runs the gateway's real main against real
// gRPC servers: it is NOT_SERVING (gRPC health and /readyz) while no healthy
// upscaler or no healthy generator is reachable, and SERVING otherwise.
func TestHealthFollowsDownstreams(t *testing.T) {
	const genSvc, upSvc = "hirez.v1.GeneratorService", "hirez.v1.UpscalerService"
	gen := startReplica(t, genSvc, true)
	up1 := startReplica(t, upSvc, false)
	up2 := startReplica(t, upSvc, false)

	g := startGateway(t, "--generator-target", gen.Addr, "--upscaler-target", up1.Addr+","+up2.Addr)
	ctx, hc, metricsAddr, httpAddr := t.Context(), g.health, g.metricsAddr, g.httpAddr
	status := func() (grpcServing, readyz, httpReady bool) {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		defer ccancel()
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		grpcServing = err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		get := func(url string) bool {
			r, err := http.Get(url)
			if err != nil {
				return false
			}
			r.Body.Close()
			return r.StatusCode == http.StatusOK
		}
		return grpcServing, get("http://" + metricsAddr + "/readyz"), get("http://" + httpAddr + "/readyz")
	}
	// want waits (up to 15 s: a reconnect backoff is 1 s and grows) for every
	// health signal to read serving, and fails with what they read otherwise.
	want := func(step string, serving bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			g, r, h := status()
			if g == serving && r == serving && h == serving {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: gRPC health SERVING=%v, /readyz ok=%v, HTTP /readyz ok=%v; want all %v", step, g, r, h, serving)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Liveness is the process only: SERVING with every downstream down, so an
	// outage of the generators restarts no gateway.
	live := func(step string) {
		t.Helper()
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: server.LivenessService})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%s: gRPC liveness %v, %v; want SERVING", step, resp, err)
		}
		r, err := http.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			t.Fatalf("%s: HTTP /healthz: %v", step, err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			t.Errorf("%s: HTTP /healthz %d; want 200", step, r.StatusCode)
		}
	}

	want("generator healthy, both upscalers NOT_SERVING", false)
	up2.set(upSvc, true)
	want("one upscaler turned SERVING", true)
	up2.Stop()
	want("the healthy upscaler stopped", false)
	live("no upscaler healthy")
	up1.set(upSvc, true)
	want("the other upscaler turned SERVING", true)
	gen.set(genSvc, false)
	want("generator NOT_SERVING", false)
	live("generator NOT_SERVING")
	gen.set(genSvc, true)
	want("generator SERVING again", true)
}

// TestOptionalPoolsStayOutOfReadiness: an Up Sampler pool and a single-DCGAN
// pool with no healthy replica leave the gateway SERVING (they serve only the
// optional pipelines) and show as 0 in hirez_gateway_pool_ready.
func TestOptionalPoolsStayOutOfReadiness(t *testing.T) {
	const genSvc, upSvc = "hirez.v1.GeneratorService", "hirez.v1.UpscalerService"
	gen := startReplica(t, genSvc, true)
	up := startReplica(t, upSvc, true)
	ups := startReplica(t, upSvc, false)
	single := startReplica(t, genSvc, false)

	g := startGateway(t, "--http-addr", "", "--generator-target", gen.Addr, "--upscaler-target", up.Addr,
		"--upsampler-target", ups.Addr, "--single-generator-target", single.Addr)
	ctx, hc, metricsAddr := t.Context(), g.health, g.metricsAddr
	metrics := func() string {
		r, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return ""
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return string(b)
	}
	want := []string{
		`hirez_gateway_pool_ready{pool="generator"} 1`,
		`hirez_gateway_pool_ready{pool="upscaler"} 1`,
		`hirez_gateway_pool_ready{pool="upsampler"} 0`,
		`hirez_gateway_pool_ready{pool="single_generator"} 0`,
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		ccancel()
		m := metrics()
		ok := err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		for _, w := range want {
			ok = ok && strings.Contains(m, w)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health %v, %v; metrics:\n%s\nwant SERVING and %q", resp, err, m, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ups.set(upSvc, true)
	for !strings.Contains(metrics(), `hirez_gateway_pool_ready{pool="upsampler"} 1`) {
		if time.Now().After(deadline.Add(15 * time.Second)) {
			t.Fatalf("the Up Sampler pool turned SERVING but the metric did not follow:\n%s", metrics())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDrainFailsReadiness: from the first moment of shutdown, through the
// drain delay, readiness fails on every surface (gRPC health, the metrics
// port's /readyz, the HTTP port's /readyz) while liveness (gRPC "liveness",
// HTTP /healthz) stays up, so Kubernetes takes the pod out of endpoints
// without restarting it.
func TestDrainFailsReadiness(t *testing.T) {
	const genSvc, upSvc = "hirez.v1.GeneratorService", "hirez.v1.UpscalerService"
	gen := startReplica(t, genSvc, true)
	up := startReplica(t, upSvc, true)

	// The drain delay only has to outlast a few loopback checks.
	g := startGateway(t, "--generator-target", gen.Addr, "--upscaler-target", up.Addr, "--drain-delay", "3s")
	hc, metricsAddr, httpAddr := g.health, g.metricsAddr, g.httpAddr
	grpcStatus := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		cctx, ccancel := context.WithTimeout(t.Context(), time.Second) // not Run's context, which Cancel ends to drain
		defer ccancel()
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return healthpb.HealthCheckResponse_UNKNOWN
		}
		return resp.GetStatus()
	}
	httpCode := func(url string) int {
		r, err := http.Get(url)
		if err != nil {
			return 0
		}
		r.Body.Close()
		return r.StatusCode
	}
	type probes struct {
		ready, live                    healthpb.HealthCheckResponse_ServingStatus
		metricsReadyz, readyz, healthz int
	}
	read := func() probes {
		return probes{grpcStatus(""), grpcStatus(server.LivenessService),
			httpCode("http://" + metricsAddr + "/readyz"), httpCode("http://" + httpAddr + "/readyz"), httpCode("http://" + httpAddr + "/healthz")}
	}
	const serving, notServing = healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_NOT_SERVING
	deadline := time.Now().Add(15 * time.Second)
	for read() != (probes{serving, serving, 200, 200, 200}) {
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %+v", read())
		}
		time.Sleep(50 * time.Millisecond)
	}

	g.Cancel() // as SIGTERM does
	for grpcStatus("") == serving {
		time.Sleep(10 * time.Millisecond)
	}
	if got, want := read(), (probes{notServing, serving, 503, 503, 200}); got != want {
		t.Errorf("draining: %+v; want %+v", got, want)
	}
}
