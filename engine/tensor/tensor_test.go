package tensor_test

import (
	"errors"
	"math"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/tensor"
)

func TestTensor(t *testing.T) {
	b := ref.New()
	x, err := tensor.FromHost(b, []float32{1, 2, 3, 4, 5, 6}, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if d := x.Dims(); d.N != 2 || d.C != 3 || d.H != 1 || d.W != 1 {
		t.Errorf("Dims() = %v", d)
	}
	if x.Len() != 6 || x.Rank() != 2 || x.Dim(-1) != 3 || x.Dim(5) != 0 {
		t.Errorf("Len %d Rank %d Dim(-1) %d", x.Len(), x.Rank(), x.Dim(-1))
	}
	v, err := x.View(3, 2, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := v.Host()
	if h[5] != 6 {
		t.Errorf("view host %v", h)
	}
	v.Free() // a view does not free its source
	if _, err := x.Host(); err != nil {
		t.Errorf("source after freeing a view: %v", err)
	}
	if _, err := x.View(4, 2); err == nil {
		t.Error("view of the wrong size succeeded")
	}
	if err := x.ToHost(make([]float32, 5)); err == nil {
		t.Error("ToHost with a short slice succeeded")
	}
	if err := x.CopyFromHost(make([]float32, 7)); err == nil {
		t.Error("CopyFromHost with a long slice succeeded")
	}
	x.Free()
	x.Free()
	if _, err := x.Host(); err == nil {
		t.Error("Host after Free succeeded")
	}
	for _, shape := range [][]int{{}, {0}, {2, -1}} {
		if _, err := tensor.New(b, shape...); err == nil {
			t.Errorf("New(%v) succeeded", shape)
		}
	}
	if _, err := tensor.FromHost(b, []float32{1}, 2); err == nil {
		t.Error("FromHost with too few values succeeded")
	}
	if _, err := tensor.New(nil, 1); err == nil {
		t.Error("New on a nil backend succeeded")
	}
}

func TestCheckFinite(t *testing.T) {
	b := ref.New()
	ok, _ := tensor.FromHost(b, []float32{1, -2, 3}, 3)
	if err := tensor.CheckFinite(ok, nil); err != nil {
		t.Errorf("finite tensor: %v", err)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		x, _ := tensor.FromHost(b, []float32{1, bad, 3}, 1, 3)
		err := tensor.CheckFinite(x, nil)
		var nf *tensor.NonFiniteError
		if !errors.As(err, &nf) || nf.Index != 1 {
			t.Errorf("CheckFinite with %v: %v", bad, err)
		}
	}
	huge, _ := tensor.FromHost(b, []float32{3e38, 3e38}, 2)
	var nf *tensor.NonFiniteError
	if err := tensor.CheckFinite(huge, nil); !errors.As(err, &nf) || nf.Index != -1 {
		t.Errorf("overflowing sum: %v", err)
	}
}
