//go:build cuda || cudaemu

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/backendtest"
	"github.com/hirez-ml/hirez/engine/backend/ref"
)

// newBackend opens device 0. A binary built with -tags cuda cannot start
// without the driver (gorgonia.org/cu's init exits), so these tests run only
// on a GPU machine: scripts/gpu-check.sh runs the compiled binary.
func newBackend(t testing.TB) *Backend {
	t.Helper()
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("cuda: %s", b.Device())
	return b
}

// TestConformance runs the shared harness (every op against ref on awkward and
// random shapes, bad arguments, concurrency) on the GPU.
func TestConformance(t *testing.T) { backendtest.Run(t, newBackend(t)) }

// upload allocates and fills a buffer on bk.
func upload(t testing.TB, bk backend.Backend, v []float32) backend.Buffer {
	t.Helper()
	x, err := bk.Alloc(len(v))
	if err != nil {
		t.Fatal(err)
	}
	if err := bk.Upload(x, v); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bk.Free(x) })
	return x
}

func random(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 2*rng.Float32() - 1
	}
	return v
}

// TestLargeGEMM covers what the harness does not: several 64×64 tiles in both
// directions with ragged edges, K over many 16-wide slices, every transpose.
func TestLargeGEMM(t *testing.T) {
	b := newBackend(t)
	oracle := ref.New()
	defer oracle.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	for _, sh := range [][3]int{{129, 67, 300}, {1, 513, 31}, {300, 2, 1000}, {64, 64, 64}, {65, 65, 17}} {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				g := backend.Gemm{TransA: ta, TransB: tb, M: sh[0], N: sh[1], K: sh[2], Alpha: 0.75, Beta: -0.5}
				a, bm, c := random(rng, g.M*g.K), random(rng, g.K*g.N), random(rng, g.M*g.N)
				var out [2][]float32
				for s, bk := range []backend.Backend{oracle, b} {
					cb := upload(t, bk, c)
					if err := bk.MatMul(g, upload(t, bk, a), upload(t, bk, bm), cb); err != nil {
						t.Fatalf("%s: %+v: %v", bk.Name(), g, err)
					}
					out[s] = make([]float32, len(c))
					if err := bk.Download(out[s], cb); err != nil {
						t.Fatal(err)
					}
				}
				var worst, scale float64
				for i := range out[0] {
					scale = math.Max(scale, math.Abs(float64(out[0][i])))
					worst = math.Max(worst, math.Abs(float64(out[1][i]-out[0][i])))
				}
				if worst > 1e-4*scale {
					t.Errorf("%+v: max error %.3g (max |ref| %.3g)", g, worst, scale)
				}
			}
		}
	}
}

// TestNotClosedTwice checks that Close is idempotent and later calls fail.
func TestNotClosedTwice(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	x, err := b.Alloc(4)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if err := b.Fill(x, 1); err == nil {
		t.Error("fill after close: no error")
	}
}

// BenchmarkConv2D is BenchmarkConv2D/cuda/<shape>: the forward convolutions of
// backendtest.BenchShapes, timed up to the end of the queued work.
func BenchmarkConv2D(bm *testing.B) {
	bm.Run("cuda", func(bm *testing.B) {
		bk := newBackend(bm)
		rng := rand.New(rand.NewPCG(1, 1))
		for _, c := range backendtest.BenchShapes() {
			bm.Run(backendtest.ShapeName(c), func(bm *testing.B) {
				x, w := upload(bm, bk, random(rng, c.In.Size())), upload(bm, bk, random(rng, c.WeightLen()))
				bias, y := upload(bm, bk, random(rng, c.Out)), upload(bm, bk, random(rng, c.OutDims().Size()))
				bm.ReportAllocs()
				bm.ResetTimer()
				for range bm.N {
					if err := bk.Conv2DForward(c, x, w, bias, y); err != nil {
						bm.Fatal(err)
					}
				}
				if err := bk.Sync(); err != nil {
					bm.Fatal(err)
				}
				bm.ReportMetric(c.FLOPs()*float64(bm.N)/bm.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	})
}

// BenchmarkSGEMM times square GEMMs, for the kernel's GFLOP/s against cuBLAS
// (PyTorch's matmul in scripts/gpu/torch_gpu.py).
func BenchmarkSGEMM(bm *testing.B) {
	bk := newBackend(bm)
	rng := rand.New(rand.NewPCG(2, 2))
	for _, n := range []int{512, 2048, 4096} {
		bm.Run(fmt.Sprintf("n%d", n), func(bm *testing.B) {
			g := backend.Gemm{M: n, N: n, K: n, Alpha: 1}
			a, b, c := upload(bm, bk, random(rng, n*n)), upload(bm, bk, random(rng, n*n)), upload(bm, bk, random(rng, n*n))
			bm.ResetTimer()
			for range bm.N {
				if err := bk.MatMul(g, a, b, c); err != nil {
					bm.Fatal(err)
				}
			}
			if err := bk.Sync(); err != nil {
				bm.Fatal(err)
			}
			bm.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(bm.N)/bm.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
