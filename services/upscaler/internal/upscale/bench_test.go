package upscale

import (
	"context"
	"fmt"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
)

// BenchmarkBatch runs one model pass at the sides the gateway's pipeline asks
// for (32 → 64 → 128 → 256) and batch sizes 1–8 on the default backend, and
// reports the compute per image: what MaxBatchPixels is chosen from. A batch
// pays only where ms/img falls as the batch grows.
//
//	go test -run '^$' -bench Batch -benchtime 40x ./internal/upscale
func BenchmarkBatch(b *testing.B) {
	be, err := choose.Open("")
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	net, err := model.Build("espcn-x2", be, model.Options{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	m, err := NewModel(net, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer Release(m)
	for _, side := range []int{32, 64, 128} {
		for _, n := range []int{1, 2, 4, 8} {
			imgs := make([]*imageio.RGB, n)
			for i := range imgs {
				imgs[i] = imageio.NewRGB(side, side)
			}
			b.Run(fmt.Sprintf("%s/side=%d/batch=%d", be.Name(), side, n), func(b *testing.B) {
				ctx := context.Background()
				if _, err := m.upscale(ctx, imgs); err != nil { // buffers and primitives for this shape
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					if _, err := m.upscale(ctx, imgs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N*n), "ms/img")
			})
		}
	}
}
