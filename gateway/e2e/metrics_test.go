package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/platform/servertest"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// scrape reads the Prometheus text exposition at addr's /metrics into
// series (name with its labels, as printed) → value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// want fails unless every series in want has its value in got.
func wantSeries(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: %s = %v (present %v), want %v", what, k, g, ok, v)
		}
	}
}

// eventually scrapes addr until ok holds for the series, or fails after 30 s
// with the last scrape (what ok waits for is load the test keeps up, not a
// duration).
func eventually(t *testing.T, addr, what string, ok func(map[string]float64) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := scrape(t, addr)
		if ok(m) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within 30s; last scrape: %v", what, m)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAdmissionMetrics scrapes the real gateway's /metrics: the admission
// gauges follow one long request (admitted, chains running and waiting,
// backlog, accounted bytes), a request over the backlog is counted as shed
// with its reason, and all return to 0 once the request ends.
func TestAdmissionMetrics(t *testing.T) {
	gen := startProc(t, "generator", "--model", genModel, "--max-wait", "2ms")
	up := startProc(t, "upscaler", "--model", upModel, "--max-wait", "2ms")
	metrics := servertest.FreeAddr(t)
	gw := startProc(t, "gateway", "--generator-target", gen.addr, "--upscaler-target", up.addr, "--http-addr", "",
		"--metrics-addr", metrics, "--max-chains", "2", "--max-backlog", "16", "--max-inflight-bytes", "100000000")
	for _, p := range []*proc{gen, up} {
		waitServing(t, p, "")
	}
	waitServing(t, gw, "")
	wantSeries(t, "idle", scrape(t, metrics), map[string]float64{
		"hirez_gateway_admitted_requests": 0, "hirez_gateway_chains_running": 0, "hirez_gateway_chains_waiting": 0,
		"hirez_gateway_backlog_images": 0, "hirez_gateway_inflight_bytes": 0, "hirez_gateway_inflight_bytes_limit": 1e8,
		`hirez_gateway_shed_total{reason="GATEWAY_BUSY"}`: 0, `hirez_gateway_shed_total{reason="DEADLINE_TOO_SHORT"}`: 0,
	})

	client := pb.NewGatewayServiceClient(dial(t, gw.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	long, stopLong := context.WithCancel(ctx)
	defer stopLong()
	const n = 64
	openStream(t, long, client, &pb.GenerateImagesRequest{Count: n, Seed: 3})
	// 256 px chains: 4 × 3·256² accounted bytes each (pipeline.ChainBytes).
	chain := float64(4 * 3 * 256 * 256)
	eventually(t, metrics, "one request admitted with its chains running and waiting", func(m map[string]float64) bool {
		return m["hirez_gateway_admitted_requests"] == 1 && m["hirez_gateway_chains_running"] == 2 &&
			m["hirez_gateway_chains_waiting"] >= 1 && m["hirez_gateway_inflight_bytes"] == 2*chain &&
			m["hirez_gateway_backlog_images"] > 0 && m["hirez_gateway_backlog_images"] < n
	})
	if _, err := generate(ctx, client, &pb.GenerateImagesRequest{Count: 8, Seed: 9}, nil); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a request over the backlog: %v, want RESOURCE_EXHAUSTED", err)
	}
	wantSeries(t, "after a refusal", scrape(t, metrics), map[string]float64{`hirez_gateway_shed_total{reason="GATEWAY_BUSY"}`: 1})

	stopLong()
	eventually(t, metrics, "all back to 0 after the request ended", func(m map[string]float64) bool {
		return m["hirez_gateway_admitted_requests"] == 0 && m["hirez_gateway_chains_running"] == 0 &&
			m["hirez_gateway_chains_waiting"] == 0 && m["hirez_gateway_inflight_bytes"] == 0 && m["hirez_gateway_backlog_images"] == 0
	})
}

// TestUpscalerBudgetMetrics scrapes the real upscaler's /metrics while
// concurrent calls wait for its in-flight budget, set to fit one image: the
// bytes in use are that image's cost and the others wait; after, both are 0.
func TestUpscalerBudgetMetrics(t *testing.T) {
	// One 128² image at ×2 costs its input and output: 3·128² + 3·256².
	const cost = 3*128*128 + 3*256*256
	metrics := servertest.FreeAddr(t)
	up := startProc(t, "upscaler", "--model", upModel, "--max-wait", "1ms", "--metrics-addr", metrics,
		"--max-inflight-bytes", fmt.Sprint(cost+cost/2))
	waitServing(t, up, "hirez.v1.UpscalerService")
	wantSeries(t, "idle", scrape(t, metrics), map[string]float64{
		"hirez_upscaler_inflight_bytes": 0, "hirez_upscaler_inflight_waiters": 0, "hirez_upscaler_inflight_bytes_limit": cost + cost/2,
	})

	client := pb.NewUpscalerServiceClient(dial(t, up.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	img := &pb.RawImage{Rgb: make([]byte, 3*128*128), Width: 128, Height: 128, Channels: 3}
	load, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 8 { // callers that keep the budget full until the test has seen it
		wg.Go(func() {
			for load.Err() == nil {
				if _, err := client.Upscale(load, &pb.UpscaleRequest{Images: []*pb.RawImage{img}}); err != nil && load.Err() == nil {
					t.Errorf("upscale: %v", err)
					return
				}
			}
		})
	}
	eventually(t, metrics, "one image's cost in use and callers waiting", func(m map[string]float64) bool {
		return m["hirez_upscaler_inflight_bytes"] == cost && m["hirez_upscaler_inflight_waiters"] >= 1
	})
	stopLoad()
	wg.Wait()
	eventually(t, metrics, "the budget empty after the calls", func(m map[string]float64) bool {
		return m["hirez_upscaler_inflight_bytes"] == 0 && m["hirez_upscaler_inflight_waiters"] == 0
	})
}
