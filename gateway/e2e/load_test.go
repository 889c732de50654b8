package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/platform/rpcerr"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// BenchmarkOverload is issue 15's scenario: N clients at once each ask the
// real stack (generator, two espcn upscalers, gateway) for 256 images, once,
// with a 120 s deadline. It reports how each call ended — every image (ok),
// RESOURCE_EXHAUSTED before its first image (shed), any error after an image
// (mid-stream, the failure admission must prevent), any other error before
// one (failed) — and the peak RSS of the serving processes. Run it with
// -benchtime 1x; b.N is ignored (one round per run). In the retry=on runs a
// refused client waits for the refusal's RetryInfo delay and asks again
// (until the deadline), as a well-behaved client would; "shed" then counts
// refusals, and "ok" the calls that got all of their images in the end.
func BenchmarkOverload(b *testing.B) {
	for _, tc := range []struct {
		n     int
		retry bool
	}{{8, false}, {40, false}, {8, true}} {
		n := tc.n
		b.Run(fmt.Sprintf("clients=%d/retry=%v", n, tc.retry), func(b *testing.B) {
			s := startStack(b)
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			var (
				mu                          sync.Mutex
				ok, shed, midStream, failed int
				codesSeen                   = map[codes.Code]int{}
				wg                          sync.WaitGroup
			)
			start := time.Now()
			for i := range n {
				wg.Go(func() {
					got, err := generate(ctx, s.gateway, &pb.GenerateImagesRequest{Count: 256, Seed: int64(1 + 1000*i)}, nil)
					for tc.retry && len(got) == 0 && status.Code(err) == codes.ResourceExhausted {
						mu.Lock()
						shed++
						mu.Unlock()
						d, _ := rpcerr.RetryDelay(status.Convert(err))
						select {
						case <-time.After(d):
						case <-ctx.Done():
						}
						got, err = generate(ctx, s.gateway, &pb.GenerateImagesRequest{Count: 256, Seed: int64(1 + 1000*i)}, nil)
					}
					mu.Lock()
					defer mu.Unlock()
					codesSeen[status.Code(err)]++
					switch {
					case err == nil && len(got) == 256:
						ok++
					case len(got) > 0:
						midStream++
					case status.Code(err) == codes.ResourceExhausted:
						shed++
					default:
						failed++
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(ok), "ok")
			b.ReportMetric(float64(shed), "shed")
			b.ReportMetric(float64(midStream), "mid-stream")
			b.ReportMetric(float64(failed), "failed")
			b.ReportMetric(time.Since(start).Seconds(), "s")
			b.ReportMetric(peakRSSMiB(b, s.gw), "gw-MiB")
			b.ReportMetric(max(peakRSSMiB(b, s.ups[0]), peakRSSMiB(b, s.ups[1])), "up-MiB")
			b.Logf("codes %v", codesSeen)
		})
	}
}
