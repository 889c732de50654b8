package backendtest

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
)

// BenchShapes are the convolutions of the lead's table: SRCNN's first layer on
// a 64² patch, a DCGAN generator layer and a discriminator layer.
func BenchShapes() []backend.Conv2D {
	return []backend.Conv2D{
		{In: backend.Dims{N: 1, C: 3, H: 64, W: 64}, Out: 64, KH: 9, KW: 9, Stride: 1, Pad: 4},
		{In: backend.Dims{N: 16, C: 128, H: 16, W: 16}, Out: 64, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{In: backend.Dims{N: 16, C: 64, H: 32, W: 32}, Out: 128, KH: 3, KW: 3, Stride: 2, Pad: 1},
	}
}

// ShapeName is a benchmark-friendly name for c, e.g. "n1c3h64w64_o64k9s1p4".
func ShapeName(c backend.Conv2D) string {
	return fmt.Sprintf("n%dc%dh%dw%d_o%dk%ds%dp%d", c.In.N, c.In.C, c.In.H, c.In.W, c.Out, c.KH, c.Stride, c.Pad)
}

// BenchConv2D runs one sub-benchmark per shape of Conv2DForward on bk (with
// bias), reporting allocations and GFLOP/s. Call it as
//
//	func BenchmarkConv2D(b *testing.B) { b.Run("ref", func(b *testing.B) { backendtest.BenchConv2D(b, ref.New()) }) }
//
// to get the names BenchmarkConv2D/<backend>/<shape>.
func BenchConv2D(b *testing.B, bk backend.Backend) {
	rng := rand.New(rand.NewPCG(1, 1))
	alloc := func(n int) backend.Buffer {
		x, err := bk.Alloc(n)
		if err != nil {
			b.Fatal(err)
		}
		h := make([]float32, n)
		for i := range h {
			h[i] = rng.Float32()*2 - 1
		}
		if err := bk.Upload(x, h); err != nil {
			b.Fatal(err)
		}
		return x
	}
	for _, c := range BenchShapes() {
		b.Run(ShapeName(c), func(b *testing.B) {
			x, w, bias, y := alloc(c.In.Size()), alloc(c.WeightLen()), alloc(c.Out), alloc(c.OutDims().Size())
			defer func() {
				for _, buf := range []backend.Buffer{x, w, bias, y} {
					bk.Free(buf)
				}
			}()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := bk.Conv2DForward(c, x, w, bias, y); err != nil {
					b.Fatal(err)
				}
			}
			if err := bk.Sync(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(c.FLOPs()*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
