//go:build cgo

package bench

import (
	"context"
	"fmt"
	"io"
	"runtime/pprof"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/cpu"
	"github.com/hirez-ml/hirez/engine/backend/ref"
)

// backends are the ones benchmarked: cpu, cpu-bf16 where the CPU has native
// bfloat16 (inference only), and ref on the small shapes (it is the oracle, not
// a contender).
func backends(b *testing.B, withRef, withBF16 bool) []backend.Backend {
	var bs []backend.Backend
	for _, bf := range []bool{false, true} {
		if bf && (!withBF16 || !cpu.NativeBF16()) {
			continue
		}
		c, err := cpu.New(cpu.Options{Threads: 2, BF16: bf})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		bs = append(bs, c)
	}
	if withRef {
		bs = append(bs, ref.New())
	}
	return bs
}

func report(b *testing.B, flops float64) {
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func input(b *testing.B, be backend.Backend, n int, seed float32) backend.Buffer {
	x, err := be.Alloc(n)
	if err != nil {
		b.Fatal(err)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32((i*7919)%1000)/1000*seed - 0.5
	}
	if err := be.Upload(x, v); err != nil {
		b.Fatal(err)
	}
	return x
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
		for _, be := range backends(b, i == len(shapes)-1, true) {
			name := fmt.Sprintf("%s/%dx%dx%dx%d_o%d_k%d", be.Name(), c.In.N, c.In.C, c.In.H, c.In.W, c.Out, c.KH)
			b.Run(name, func(b *testing.B) {
				x, w, bias := input(b, be, c.In.Size(), 1), input(b, be, c.WeightLen(), 0.1), input(b, be, c.Out, 1)
				y, err := be.Alloc(c.OutDims().Size())
				if err != nil {
					b.Fatal(err)
				}
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

func benchForward(b *testing.B, build func(be backend.Backend) (*Forward, error)) {
	for _, be := range backends(b, false, true) {
		b.Run(be.Name(), func(b *testing.B) {
			f, err := build(be)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Free()
			if err := f.Run(); err != nil { // warm-up: primitives, packed weights
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := f.Run(); err != nil {
					b.Fatal(err)
				}
			}
			report(b, f.FLOPs())
		})
	}
}

func BenchmarkSRCNN(b *testing.B) {
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("b%d", n), func(b *testing.B) {
			benchForward(b, func(be backend.Backend) (*Forward, error) { return SRCNN(be, n, 128) })
		})
	}
}

func BenchmarkGenerator(b *testing.B) {
	b.Run("h128_b16", func(b *testing.B) {
		benchForward(b, func(be backend.Backend) (*Forward, error) { return Generator(be, 16, 128) })
	})
}

// BenchmarkTrainStep times steps of the engine's own GAN loop (train.GAN), one
// run of b.N+1 steps; ns/op and allocs/op are per step after the first.
func BenchmarkTrainStep(b *testing.B) {
	const n, h = 16, 64
	dir := b.TempDir()
	if err := WriteImages(dir, 2*n, h); err != nil {
		b.Fatal(err)
	}
	flops, err := TrainStepFLOPs(n, h)
	if err != nil {
		b.Fatal(err)
	}
	for _, be := range backends(b, false, false) {
		b.Run(be.Name()+"/h64_b16", func(b *testing.B) {
			s, err := TrainSteps(context.Background(), be, dir, n, h, b.N)
			if err != nil {
				b.Fatal(err)
			}
			var total float64
			var allocs uint64
			for _, x := range s {
				total += x.Time.Seconds()
				allocs += x.Allocs
			}
			// The loop ran outside the benchmark's timer: report its own figures.
			b.ReportMetric(total/float64(b.N)*1e9, "ns/step")
			b.ReportMetric(float64(allocs)/float64(b.N), "allocs/step")
			b.ReportMetric(flops*float64(b.N)/total/1e9, "GFLOP/s")
		})
	}
}

// TestForwardRuns keeps the workloads building and running (at a small side)
// under go test, so a preset or API change breaks here rather than in make bench.
func TestForwardRuns(t *testing.T) {
	be, err := cpu.New(cpu.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	for _, build := range []func() (*Forward, error){
		func() (*Forward, error) { return SRCNN(be, 2, 16) },
		func() (*Forward, error) { return Generator(be, 2, 32) },
	} {
		f, err := build()
		if err != nil {
			t.Fatal(err)
		}
		s, err := TimeRuns(f.Run, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 2 || f.FLOPs() <= 0 || len(f.Output()) == 0 {
			t.Errorf("runs %v, FLOPs %v, output %d values", s, f.FLOPs(), len(f.Output()))
		}
		f.Free()
	}
	dir := t.TempDir()
	if err := WriteImages(dir, 4, 32); err != nil {
		t.Fatal(err)
	}
	s, err := TrainSteps(context.Background(), be, dir, 2, 32, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 2 {
		t.Errorf("%d timed train steps, want 2", len(s))
	}
}

// TestTrainingUnderCPUProfiler: the engine's training loop on the cpu backend
// survives Go's CPU profiler. SIGPROF reaching OpenMP's worker threads used to
// corrupt the C heap (free() aborted the process within a few steps); hz.c now
// starts those threads with SIGPROF blocked. A regression kills the test binary.
func TestTrainingUnderCPUProfiler(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	be, err := cpu.New(cpu.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	data := t.TempDir()
	if err := WriteImages(data, 32, 32); err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		t.Skipf("CPU profiler busy: %v", err)
	}
	defer pprof.StopCPUProfile()
	if _, err := TrainSteps(context.Background(), be, data, 16, 32, 12); err != nil {
		t.Fatal(err)
	}
}
