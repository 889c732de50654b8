package model

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// TestSpectralNormPreset: dcgan-d-sn has spectral norm on every conv and on the
// last dense layer, no BatchNorm, a non-trainable weight_u per such layer; a
// weights file carries u, so a network opened from it gives the same eval
// output as the one that wrote it after u has moved in training.
func TestSpectralNormPreset(t *testing.T) {
	b := ref.New()
	defer b.Close()
	n, err := Build("dcgan-d-sn", b, Options{Side: 16, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Free()
	var names []string
	for _, p := range n.Params() {
		names = append(names, p.Name)
		if strings.HasSuffix(p.Name, ".weight_u") == p.Trainable {
			t.Errorf("%s: trainable %v", p.Name, p.Trainable)
		}
	}
	want := "conv1.weight conv1.bias conv1.weight_u conv2.weight conv2.bias conv2.weight_u " +
		"conv3.weight conv3.bias conv3.weight_u fc.weight fc.bias fc.weight_u"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("params %s\nwant   %s", got, want)
	}
	for _, st := range n.Plan() {
		if st.Op == OpBatchNorm {
			t.Errorf("layer %s is a BatchNorm", st.Name)
		}
	}
	if c := n.Config(); !strings.Contains(c.JSON(), `"spectral_norm":true`) {
		t.Errorf("config JSON %s", c.JSON())
	}

	x, err := tensor.FromHost(b, hashFill("x.signed", []int{2, 3, 16, 16}), 2, 3, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Free()
	u0, _ := layer.Lookup(n.Body(), "conv2.weight_u").Value.Host()
	for range 3 {
		if _, err := n.Forward(x, layer.Train); err != nil {
			t.Fatal(err)
		}
	}
	u3, _ := layer.Lookup(n.Body(), "conv2.weight_u").Value.Host()
	if relErr(u3, u0) == 0 {
		t.Error("training forwards left conv2.weight_u as it was")
	}
	y, err := n.Forward(x, layer.Infer)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := y.Host()
	path := filepath.Join(t.TempDir(), "d.safetensors")
	if err := n.Save(path, nil); err != nil {
		t.Fatal(err)
	}
	m, _, err := Open(path, b)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	y, err = m.Forward(x, layer.Infer)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := y.Host()
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("eval output %d: %v before the file, %v after", i, before[i], after[i])
		}
	}
}

func TestSpectralNormSpecRejects(t *testing.T) {
	c, err := ConfigFor("dcgan-d-stable", 16)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range c.Layers {
		if s.Op == OpBatchNorm || s.Op == OpLeakyReLU || s.Op == OpFlatten {
			bad := c
			bad.Layers = append([]Spec(nil), c.Layers...)
			bad.Layers[i].SpectralNorm = true
			if _, err := bad.Plan(); err == nil || !strings.Contains(err.Error(), "spectral_norm is for conv and dense layers only") {
				t.Errorf("spectral norm on %s (%s): %v", s.Name, s.Op, err)
			}
		}
	}
	bad := c
	bad.Layers = append([]Spec(nil), c.Layers...)
	bad.Layers[0].SpectralNorm, bad.Layers[0].ZeroInit = true, true
	if _, err := bad.Plan(); err == nil || !strings.Contains(err.Error(), "zero_init") {
		t.Errorf("spectral norm with zero init: %v", err)
	}
}
