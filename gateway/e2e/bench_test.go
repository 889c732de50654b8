package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hirez-ml/hirez/engine/backends"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/gateway/internal/grpcapi"
	"github.com/hirez-ml/hirez/gateway/internal/local"
	"github.com/hirez-ml/hirez/gateway/internal/pipeline"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// clients is how many concurrent callers each benchmark runs.
const clients = 8

// measure runs b.N single-image requests from `clients` goroutines and
// reports images/s and the p50/p99 latency of a request.
func measure(b *testing.B, one func(ctx context.Context) error) {
	b.Helper()
	ctx := context.Background()
	// Warm up: connections, first allocations, oneDNN primitive caches.
	for range clients {
		if err := one(ctx); err != nil {
			b.Fatal(err)
		}
	}
	var (
		next atomic.Int64
		mu   sync.Mutex
		lat  []time.Duration
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := one(ctx); err != nil {
					b.Error(err)
					return
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(lat))/el.Seconds(), "images/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkGateway: concurrent clients ask the real gateway (over loopback
// TCP, generator + two upscaler processes) for one 256×256 image each, with
// dynamic batching on (max batch 8) and off (max batch 1).
func BenchmarkGateway(b *testing.B) {
	for _, up := range []struct{ name, path string }{{"espcn-x2", upModel}, {"srcnn-classic", srModel}} {
		for _, batching := range []struct{ name, maxBatch string }{{"on", "8"}, {"off", "1"}} {
			b.Run(fmt.Sprintf("upscaler=%s/batching=%s", up.name, batching.name), func(b *testing.B) {
				s := startStackWith(b, up.path, batching.maxBatch)
				var seed atomic.Int64
				measure(b, func(ctx context.Context) error {
					got, err := generate(ctx, s.gateway, &pb.GenerateImagesRequest{Count: 1, Seed: 1 + seed.Add(1)}, nil)
					if err == nil && len(got) != 1 {
						err = fmt.Errorf("%d images", len(got))
					}
					return err
				})
			})
		}
	}
}

// BenchmarkInProcess does the same work with the same models in this process:
// the pipeline over the engine directly, no network, no batching (one network
// per stage behind a lock) — what the served pipeline costs on top.
func BenchmarkInProcess(b *testing.B) {
	be, err := backends.Open("")
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	gnet, _, err := model.Open(filepath.Join(genModel, "v1.safetensors"), be)
	if err != nil {
		b.Fatal(err)
	}
	defer gnet.Free()
	for _, up := range []struct{ name, path string }{{"espcn-x2", upModel}, {"srcnn-classic", srModel}} {
		b.Run("upscaler="+up.name, func(b *testing.B) {
			unet, _, err := model.Open(up.path, be)
			if err != nil {
				b.Fatal(err)
			}
			defer unet.Free()
			svc := pipeline.New(local.NewGenerator(gnet, "g"), local.NewUpscaler(unet, "sr"), grpcapi.Limits)
			var seed atomic.Int64
			measure(b, func(ctx context.Context) error {
				return svc.GenerateImages(ctx, pipeline.Request{Count: 1, Seed: 1 + seed.Add(1)}, func(pipeline.Image) error { return nil })
			})
		})
	}
}
