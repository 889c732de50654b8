package model

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/safetensors"
	"github.com/hirez-ml/hirez/engine/tensor"
)

func hostParams(t *testing.T, n *Network) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for _, p := range n.Params() {
		h, err := p.Value.Host()
		if err != nil {
			t.Fatal(err)
		}
		out[p.Name] = h
	}
	return out
}

func TestSaveLoadRoundTrip(t *testing.T) {
	b := ref.New()
	a, err := Build("dcgan-g-stable", b, Options{Side: 8, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Free()
	// One training forward moves the running statistics and the counter.
	z, _ := tensor.FromHost(b, hashFill("x.latent", []int{2, 100}), 2, 100)
	defer z.Free()
	if _, err := a.Forward(z, layer.Train); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "g.safetensors")
	if err := a.Save(path, map[string]string{"version": "v7", "trained_on": "emoji"}); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.ReadFile(path, safetensors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["preset"] != "dcgan-g-stable" || f.Metadata["version"] != "v7" || f.Metadata["config"] == "" {
		t.Errorf("metadata %v", f.Metadata)
	}
	if nb, ok := f.Tensor("bn1.num_batches_tracked"); !ok || nb.DType != safetensors.I64 || nb.I64[0] != 1 {
		t.Errorf("bn1.num_batches_tracked = %+v", nb)
	}

	c, err := Build("dcgan-g-stable", b, Options{Side: 8, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Free()
	meta, err := c.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if meta["trained_on"] != "emoji" || c.Tracked() != 1 {
		t.Errorf("meta %v tracked %d", meta, c.Tracked())
	}
	want, got := hostParams(t, a), hostParams(t, c)
	for k, v := range want {
		if relErr(got[k], v) != 0 {
			t.Errorf("%s differs after load", k)
		}
	}

	// Open rebuilds the architecture from the file alone.
	o, meta2, err := Open(path, b)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Free()
	if o.Config().Side != 8 || meta2["version"] != "v7" {
		t.Errorf("opened side %d meta %v", o.Config().Side, meta2)
	}
	imgA, err := a.Generate(context.Background(), []uint64{5})
	if err != nil {
		t.Fatal(err)
	}
	imgO, err := o.Generate(context.Background(), []uint64{5})
	if err != nil {
		t.Fatal(err)
	}
	if string(imgA[0].Pix) != string(imgO[0].Pix) {
		t.Error("opened network generates different bytes")
	}
}

func TestLoadRejects(t *testing.T) {
	b := ref.New()
	n, err := Build("srcnn-classic", b, Options{Side: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Free()
	good, err := n.File(nil)
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(*safetensors.File)) *safetensors.File {
		c := *good
		c.Metadata = map[string]string{"preset": "srcnn-classic"}
		c.Tensors = append([]safetensors.Tensor(nil), good.Tensors...)
		f(&c)
		return &c
	}
	cases := map[string]struct {
		file *safetensors.File
		want string
	}{
		"other preset": {mutate(func(f *safetensors.File) { f.Metadata["preset"] = "srcnn-study" }), `weights for preset "srcnn-study"`},
		"missing":      {mutate(func(f *safetensors.File) { f.Tensors = f.Tensors[1:] }), `tensor "conv1.weight" is missing`},
		"shape": {mutate(func(f *safetensors.File) {
			f.Tensors[2] = safetensors.Tensor{Name: "conv2.weight", DType: safetensors.F32, Shape: []int{32, 64, 3, 3}, F32: make([]float32, 32*64*9)}
		}), `tensor "conv2.weight" has shape [32 64 3 3] in the file, want [32 64 1 1]`},
		"extra": {mutate(func(f *safetensors.File) {
			f.Tensors = append(f.Tensors, safetensors.Tensor{Name: "conv4.weight", DType: safetensors.F32, Shape: []int{1}, F32: []float32{1}})
		}), `tensor "conv4.weight" in the file is not a parameter`},
		"dtype": {mutate(func(f *safetensors.File) {
			f.Tensors[1] = safetensors.Tensor{Name: "conv1.bias", DType: safetensors.I64, Shape: []int{64}, I64: make([]int64, 64)}
		}), `tensor "conv1.bias" has dtype I64`},
	}
	before := hostParams(t, n)
	for name, c := range cases {
		err := n.LoadFile(c.file)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
		}
	}
	// Nothing was half-loaded.
	after := hostParams(t, n)
	for k, v := range before {
		if relErr(after[k], v) != 0 {
			t.Errorf("%s changed by a rejected load", k)
		}
	}
	// Half-precision weights load (widened exactly).
	half := mutate(func(f *safetensors.File) {
		for i := range f.Tensors {
			f.Tensors[i].DType = safetensors.F16
		}
	})
	if err := n.LoadFile(half); err != nil {
		t.Errorf("F16 file: %v", err)
	}
}

// THE INTEROP CONTRACT: srcnn-study weights written by PyTorch (float16, no config
// metadata) upscale a real photo to the same bytes as PyTorch, ±1 level.
func TestSRCNNContractTorchWeights(t *testing.T) {
	// The fastest backend in the binary (ref parity is covered by
	// TestParityWithPyTorch; this one is 0.9 GFLOP).
	b, err := choose.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	n, err := Build("srcnn-study", b, Options{Side: 12})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Free()
	meta, err := n.Load("testdata/srcnn-study-torch-f16.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if meta["preset"] != "srcnn-study" {
		t.Errorf("metadata %v", meta)
	}
	photo, err := imageio.DecodeFile("testdata/photo12.png", imageio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := imageio.DecodeFile("testdata/photo12_srcnn_torch.png", imageio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := n.Upscale(context.Background(), []*imageio.RGB{photo})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].W != 24 || got[0].H != 24 {
		t.Fatalf("output %d×%d, want 24×24", got[0].W, got[0].H)
	}
	worst, off := 0, 0
	for i, v := range got[0].Pix {
		d := int(v) - int(want.Pix[i])
		if d < 0 {
			d = -d
		}
		worst = max(worst, d)
		if d != 0 {
			off++
		}
	}
	t.Logf("%s: max difference %d level(s), %d of %d values differ", b.Name(), worst, off, len(got[0].Pix))
	if worst > 1 {
		t.Errorf("max difference %d levels, want ≤ 1", worst)
	}
}

// Our files load in PyTorch with strict=True (num_batches_tracked included) and
// give the same outputs.
func TestTorchLoadsOurWeights(t *testing.T) {
	const py = "/usr/bin/python3"
	if testing.Short() {
		t.Skip("short mode")
	}
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		t.Skipf("no PyTorch at %s: %v", py, err)
	}
	b := ref.New()
	dir := t.TempDir()
	// The contract preset, both BatchNorm presets (num_batches_tracked) and the
	// PixelShuffle one; the others share their layer kinds and are covered by the
	// parity fixtures. Tiny sides: the cost is torch's import.
	sides := map[string]int{"srcnn-study": 4, "dcgan-g-stable": 8, "dcgan-d-stable": 8, "espcn-x2": 4}
	want := map[string][]float32{}
	for name, side := range sides {
		n, err := Build(name, b, Options{Side: side, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Free()
		in := n.InputShape(2)
		kind := "x.signed"
		if n.Config().Role == Generator {
			kind = "x.latent"
		} else if n.Config().Range == Unit {
			kind = "x.unit"
		}
		xs := hashFill(kind, in)
		if len(n.bns) > 0 { // move the running statistics away from 0/1 first
			x, _ := tensor.FromHost(b, hashFill(kind, in), in...)
			if _, err := n.Forward(x, layer.Train); err != nil {
				t.Fatal(err)
			}
			x.Free()
		}
		x, _ := tensor.FromHost(b, xs, in...)
		y, err := n.Forward(x, layer.Infer)
		if err != nil {
			t.Fatal(err)
		}
		want[name], _ = y.Host()
		x.Free()
		if err := n.Save(filepath.Join(dir, name+".safetensors"), nil); err != nil {
			t.Fatal(err)
		}
		err = safetensors.WriteFile(filepath.Join(dir, name+".x.safetensors"), &safetensors.File{
			Tensors: []safetensors.Tensor{{Name: "x", DType: safetensors.F32, Shape: in, F32: xs}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(py, "../../scripts/fixtures/torch_presets.py", "roundtrip", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("torch: %v\n%s", err, out)
	}
	for name, w := range want {
		f, err := safetensors.ReadFile(filepath.Join(dir, name+".y.safetensors"), safetensors.Options{})
		if err != nil {
			t.Fatal(err)
		}
		y, _ := f.Tensor("y")
		if e := relErr(y.F32, w); e > parityTol {
			t.Errorf("%s: torch output differs from ours, relative error %.2g", name, e)
		} else {
			t.Logf("%s: torch vs ours %.2g", name, e)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "srcnn-study.y.safetensors")); err != nil {
		t.Error(err)
	}
}
