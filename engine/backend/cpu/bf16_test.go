//go:build cgo

package cpu

import (
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"

	"github.com/hirez-ml/hirez/engine/backend/backendtest"
	"github.com/hirez-ml/hirez/engine/backend/ref"
)

// bf16Tol bounds a bfloat16 result against fp32 ref, relative to the largest
// value: inputs and weights each rounded to 8 significant bits (2⁻⁹ relative),
// products summed in fp32, the output rounded again for wide layers, over sums
// of up to 9·9·32 terms. The worst seen with the harness's fixed seed is 0.023
// (a clamp of a conv output: the clamp bound, not the conv's range, is the
// scale); the fp32 conv errors are 2·10⁻³. A layout or format bug is ≥ 10⁻¹.
const bf16Tol = 3e-2

func newBF16(t *testing.T) *Backend {
	t.Helper()
	if !NativeBF16() {
		t.Skip("this CPU has no native bfloat16")
	}
	be, err := New(Options{Threads: 2, BF16: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

// TestBF16Conformance runs the inference harness against ref.
func TestBF16Conformance(t *testing.T) {
	be := newBF16(t)
	if be.Name() != "cpu-bf16" {
		t.Errorf("Name() = %q", be.Name())
	}
	oracle := ref.New()
	defer oracle.Close()
	backendtest.InferenceParity(t, oracle, be, backendtest.Options{Tol: bf16Tol, Short: testing.Short()}, ErrInferenceOnly)
}

func TestBF16Refused(t *testing.T) {
	if NativeBF16() {
		t.Skip("this CPU has native bfloat16")
	}
	if _, err := New(Options{BF16: true}); err == nil {
		t.Error("BF16 backend opened on a CPU without native bfloat16")
	}
}

// TestBF16Layouts pins which outputs stay bfloat16 (so the harness's chains
// really read bfloat16 buffers) and that the bfloat16 weights are packed once.
func TestBF16Layouts(t *testing.T) {
	be := newBF16(t)
	for _, out := range []int{16, 3} {
		c := backend.Conv2D{In: backend.Dims{N: 1, C: 4, H: 6, W: 6}, Out: out, KH: 3, KW: 3, Stride: 1, Pad: 1}
		x, _ := be.Alloc(c.In.Size())
		w, _ := be.Alloc(c.WeightLen())
		y, _ := be.Alloc(c.OutDims().Size())
		for range 2 {
			if err := be.Conv2DForward(c, x, w, nil, y); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := y.(*buffer).lay.bf16, out == 16; got != want {
			t.Errorf("conv to %d channels: bf16 output %v, want %v", out, got, want)
		}
		if wb := w.(*buffer); wb.pk[0].prim == nil || wb.pk[0].gen != wb.gen || wb.pk[1].prim != nil {
			t.Errorf("conv to %d channels: weights not packed once: %+v", out, wb.pk)
		}
		h := make([]float32, y.Len())
		if err := be.Download(h, y); err != nil {
			t.Fatal(err)
		}
		if y.(*buffer).lay.bf16 != (out == 16) {
			t.Error("Download changed the buffer's layout")
		}
	}
}
