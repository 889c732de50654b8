//go:build cgo

package bench

import (
	"fmt"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/cpu"
	"github.com/hirez-ml/hirez/engine/backend/ref"
)

// backends are the ones benchmarked; ref only on the small shapes (it is the
// oracle, not a contender).
func backends(b *testing.B, withRef bool) []backend.Backend {
	c, err := cpu.New(cpu.Options{Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	bs := []backend.Backend{c}
	if withRef {
		bs = append(bs, ref.New())
	}
	return bs
}

func report(b *testing.B, flops float64) {
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkConv2D(b *testing.B) {
	shapes := []backend.Conv2D{
		{In: backend.Dims{N: 1, C: 3, H: 256, W: 256}, Out: 256, KH: 9, KW: 9, Stride: 1, Pad: 4},
		{In: backend.Dims{N: 1, C: 256, H: 256, W: 256}, Out: 128, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{In: backend.Dims{N: 1, C: 128, H: 256, W: 256}, Out: 3, KH: 5, KW: 5, Stride: 1, Pad: 2},
		{In: backend.Dims{N: 16, C: 64, H: 32, W: 32}, Out: 128, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{In: backend.Dims{N: 2, C: 3, H: 13, W: 11}, Out: 8, KH: 3, KW: 3, Stride: 1, Pad: 1},
	}
	for i, c := range shapes {
		for _, be := range backends(b, i == len(shapes)-1) {
			name := fmt.Sprintf("%s/%dx%dx%dx%d_o%d_k%d", be.Name(), c.In.N, c.In.C, c.In.H, c.In.W, c.Out, c.KH)
			b.Run(name, func(b *testing.B) {
				x, err := Input(be, c.In.Size(), 1)
				if err != nil {
					b.Fatal(err)
				}
				w, _ := Input(be, c.WeightLen(), 2)
				bias, _ := Input(be, c.Out, 3)
				y, _ := be.Alloc(c.OutDims().Size())
				if err := be.Conv2DForward(c, x, w, bias, y); err != nil { // warm-up
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := be.Conv2DForward(c, x, w, bias, y); err != nil {
						b.Fatal(err)
					}
				}
				report(b, c.FLOPs())
			})
		}
	}
}

func benchForward(b *testing.B, build func(be backend.Backend) (*Net, error), in, out int) {
	for _, be := range backends(b, false) {
		b.Run(be.Name(), func(b *testing.B) {
			net, err := build(be)
			if err != nil {
				b.Fatal(err)
			}
			x, err := Input(be, in, 1)
			if err != nil {
				b.Fatal(err)
			}
			host := make([]float32, out)
			if _, err := net.Forward(be, x); err != nil { // warm-up: primitives, packed weights
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				y, err := net.Forward(be, x)
				if err != nil {
					b.Fatal(err)
				}
				if err := be.Download(host, y); err != nil {
					b.Fatal(err)
				}
			}
			report(b, net.FLOPs())
		})
	}
}

func BenchmarkSRCNN(b *testing.B) {
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("b%d", n), func(b *testing.B) {
			benchForward(b, func(be backend.Backend) (*Net, error) { return SRCNN(be, n, 128) }, n*3*128*128, n*3*256*256)
		})
	}
}

func BenchmarkGenerator(b *testing.B) {
	b.Run("h128_b16", func(b *testing.B) {
		benchForward(b, func(be backend.Backend) (*Net, error) { return Generator(be, 16, 128, false) }, 16*100, 16*3*128*128)
	})
}

func BenchmarkTrainStep(b *testing.B) {
	for _, be := range backends(b, false) {
		b.Run(be.Name()+"/h64_b16", func(b *testing.B) {
			t, err := NewTrainStep(be, 16, 64)
			if err != nil {
				b.Fatal(err)
			}
			if err := t.Run(); err != nil { // warm-up
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := t.Run(); err != nil {
					b.Fatal(err)
				}
			}
			report(b, t.FLOPs())
		})
	}
}
