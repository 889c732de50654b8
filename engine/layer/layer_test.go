package layer_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// counting wraps ref and counts live buffers, to prove layers free what they
// allocate, and allocations, to prove they re-use what they keep.
type counting struct {
	*ref.Backend
	live, allocs int
}

func (c *counting) Alloc(n int) (backend.Buffer, error) {
	b, err := c.Backend.Alloc(n)
	if err == nil {
		c.live++
		c.allocs++
	}
	return b, err
}

func (c *counting) Free(b backend.Buffer) {
	if b != nil {
		c.live--
	}
	c.Backend.Free(b)
}

// generator is a small DCGAN-style generator: Dense → view → BN → ReLU →
// [UpSample → Conv → BN → ReLU] → Conv → Tanh.
func generator(t testing.TB, b backend.Backend) *layer.Sequential {
	t.Helper()
	fc, err := layer.NewDense(b, "fc", layer.DenseConfig{In: 16, Out: 32 * 4 * 4})
	if err != nil {
		t.Fatal(err)
	}
	view, _ := layer.NewReshape("view", 32, 4, 4)
	bn0, _ := layer.NewBatchNorm(b, "bn0", layer.BatchNormConfig{Channels: 32})
	conv1, _ := layer.NewConv2D(b, "conv1", layer.Conv2DConfig{In: 32, Out: 16, Kernel: 3, Pad: layer.PadSame, NoBias: true})
	bn1, _ := layer.NewBatchNorm(b, "bn1", layer.BatchNormConfig{Channels: 16})
	conv2, _ := layer.NewConv2D(b, "conv2", layer.Conv2DConfig{In: 16, Out: 3, Kernel: 3, Pad: layer.PadSame})
	net, err := layer.NewSequential("generator", fc, view, bn0, layer.NewReLU("relu0"),
		layer.NewUpSample2x("up1"), conv1, bn1, layer.NewReLU("relu1"), conv2, layer.NewTanh("tanh"))
	if err != nil {
		t.Fatal(err)
	}
	if err := layer.Initialize(net, layer.DCGANInit, rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Fatal(err)
	}
	return net
}

func TestParamNames(t *testing.T) {
	b := ref.New()
	net := generator(t, b)
	defer net.Free()
	var names []string
	for _, p := range net.Params() {
		names = append(names, p.Name)
		if p.Trainable != (p.Grad != nil) {
			t.Errorf("%s: trainable %v but grad %v", p.Name, p.Trainable, p.Grad)
		}
	}
	want := "fc.weight fc.bias bn0.weight bn0.bias bn0.running_mean bn0.running_var conv1.weight " +
		"bn1.weight bn1.bias bn1.running_mean bn1.running_var conv2.weight conv2.bias"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("names\n got %s\nwant %s", got, want)
	}
	if s := layer.Lookup(net, "conv1.weight").Value.Shape(); !tensor.SameShape(s, []int{16, 32, 3, 3}) {
		t.Errorf("conv1.weight shape %v", s)
	}
	if s := layer.Lookup(net, "fc.weight").Value.Shape(); !tensor.SameShape(s, []int{512, 16}) {
		t.Errorf("fc.weight shape %v", s)
	}
	if layer.Lookup(net, "nope") != nil {
		t.Error("Lookup of a missing name")
	}
	fc2, _ := layer.NewDense(b, "fc", layer.DenseConfig{In: 1, Out: 1})
	defer fc2.Free()
	if _, err := layer.NewSequential("dup", net, fc2); err == nil || !strings.Contains(err.Error(), `"fc.weight"`) {
		t.Errorf("duplicate names: err %v", err)
	}
}

func TestLoadState(t *testing.T) {
	b := ref.New()
	src, dst := generator(t, b), generator(t, b)
	defer src.Free()
	defer dst.Free()
	if err := layer.Initialize(src, layer.PyTorchInit, rand.New(rand.NewPCG(9, 9))); err != nil {
		t.Fatal(err)
	}
	state := map[string][]float32{}
	err := layer.State(src, func(name string, shape []int, data []float32) error {
		if n, _ := tensor.Size(shape); n != len(data) {
			t.Errorf("%s: shape %v with %d values", name, shape, len(data))
		}
		state[name] = data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) ([]float32, bool) { v, ok := state[name]; return v, ok }
	if err := layer.Load(dst, get); err != nil {
		t.Fatal(err)
	}
	z := mustT(t, b, uniform(rand.New(rand.NewPCG(2, 2)), 2*16, -1, 1), 2, 16)
	y1, _ := src.Forward(z, layer.Infer)
	h1 := host(t, y1)
	y2, _ := dst.Forward(z, layer.Infer)
	for i, v := range host(t, y2) {
		if v != h1[i] {
			t.Fatalf("loaded network differs at %d: %v vs %v", i, v, h1[i])
		}
	}
	delete(state, "bn1.running_var")
	if err := layer.Load(dst, get); err == nil || !strings.Contains(err.Error(), "bn1.running_var") {
		t.Errorf("missing tensor: err %v", err)
	}
	state["bn1.running_var"] = []float32{1, 2}
	if err := layer.Load(dst, get); err == nil || !strings.Contains(err.Error(), "[16]") {
		t.Errorf("wrong length: err %v", err)
	}
}

func TestInitDeterministicAndScaled(t *testing.T) {
	b := ref.New()
	draw := func(s layer.Init, seed uint64) []float32 {
		c, err := layer.NewConv2D(b, "c", layer.Conv2DConfig{In: 64, Out: 64, Kernel: 3})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Free()
		if err := layer.Initialize(c, s, rand.New(rand.NewPCG(seed, 0))); err != nil {
			t.Fatal(err)
		}
		return host(t, c.Weight.Value)
	}
	a, a2, other := draw(layer.DCGANInit, 1), draw(layer.DCGANInit, 1), draw(layer.DCGANInit, 2)
	if a[0] != a2[0] || a[100] != a2[100] || a[0] == other[0] {
		t.Error("initialisation is not a function of the seed")
	}
	std := func(v []float32) float64 {
		var s, ss float64
		for _, x := range v {
			s += float64(x)
			ss += float64(x) * float64(x)
		}
		m := s / float64(len(v))
		return math.Sqrt(ss/float64(len(v)) - m*m)
	}
	if s := std(a); math.Abs(s-0.02) > 0.001 {
		t.Errorf("DCGAN weight std %.4f, want 0.02", s)
	}
	// U(−1/√fan_in, 1/√fan_in) has std 1/√(3·fan_in).
	if s, want := std(draw(layer.PyTorchInit, 1)), 1/math.Sqrt(3*64*9); math.Abs(s-want) > 0.05*want {
		t.Errorf("PyTorch weight std %.4f, want %.4f", s, want)
	}
}

func TestInferenceDoesNotAllocate(t *testing.T) {
	b := ref.New()
	net := generator(t, b)
	defer net.Free()
	z := mustT(t, b, uniform(rand.New(rand.NewPCG(1, 2)), 4*16, -1, 1), 4, 16)
	if _, err := net.Forward(z, layer.Infer); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := net.Forward(z, layer.Infer); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("steady-state inference Forward: %v allocations, want 0", allocs)
	}
}

// TestShapeChangesReuseShelvedBuffers: a network alternating between batch
// sizes (what a served model's batcher makes it do) keeps each shape's outputs,
// so once every shape has run, switching allocates nothing; outputs are right
// at every shape; training at another shape works; Free releases everything.
func TestShapeChangesReuseShelvedBuffers(t *testing.T) {
	c := &counting{Backend: ref.New()}
	net := generator(t, c)
	rng := rand.New(rand.NewPCG(5, 5))
	params := c.live
	zs := map[int][]float32{}
	run := func(n int, mode layer.Mode) []float32 {
		if zs[n] == nil {
			zs[n] = uniform(rng, n*16, -1, 1)
		}
		z, err := tensor.FromHost(c, zs[n], n, 16)
		if err != nil {
			t.Fatal(err)
		}
		defer z.Free()
		y, err := net.Forward(z, mode)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{n, 3, 8, 8}; !tensor.SameShape(y.Shape(), want) {
			t.Fatalf("output %v, want %v", y.Shape(), want)
		}
		if mode == layer.Train {
			dy, _ := tensor.FromHost(c, uniform(rng, y.Len(), -1, 1), y.Shape()...)
			defer dy.Free()
			if _, err := net.Backward(dy); err != nil {
				t.Fatal(err)
			}
		}
		return host(t, y)
	}
	first := map[int][]float32{}
	for _, n := range []int{2, 5, 1} {
		first[n] = run(n, layer.Infer)
	}
	before := c.allocs
	for range 3 {
		for _, n := range []int{5, 2, 1, 2} {
			if got := run(n, layer.Infer); !slices.Equal(got, first[n]) {
				t.Fatalf("batch %d: output changed after running other batch sizes", n)
			}
		}
	}
	// The only allocations left are the inputs run uploads (one per call).
	if got := c.allocs - before; got != 12 {
		t.Errorf("cycling batch sizes 5, 2, 1, 2 three times: %d backend allocations, want 12 (the inputs only)", got)
	}
	run(3, layer.Train)
	run(1, layer.Infer)
	run(3, layer.Train)
	net.Free()
	if c.live != 0 {
		t.Errorf("%d buffers leaked (%d were parameters)", c.live, params)
	}
}

// TestShelfIsBounded: a layer keeps at most a few shapes, and never an idle
// buffer larger than its value bound (32 MiB), so a one-off huge batch is
// released as soon as the layer runs at another shape.
func TestShelfIsBounded(t *testing.T) {
	c := &counting{Backend: ref.New()}
	relu := layer.NewReLU("relu")
	forward := func(n int) {
		x, err := tensor.New(c, n)
		if err != nil {
			t.Fatal(err)
		}
		defer x.Free()
		if _, err := relu.Forward(x, layer.Infer); err != nil {
			t.Fatal(err)
		}
	}
	for n := 1; n <= 40; n++ {
		forward(n)
	}
	if c.live > 1+16 {
		t.Errorf("after 40 shapes: %d live buffers, want at most 17 (the output and 16 shelved)", c.live)
	}
	forward(8<<20 + 1) // one more value than the bound
	forward(1)
	live := c.live
	before := c.allocs
	forward(8<<20 + 1)
	if c.allocs-before != 2 { // its input, and its output again
		t.Errorf("a buffer over the bound was kept: %d allocations, want 2", c.allocs-before)
	}
	if live > 1+16 {
		t.Errorf("%d live buffers, want at most 17", live)
	}
	relu.Free()
	if c.live != 0 {
		t.Errorf("%d buffers leaked", c.live)
	}
}

func TestBadInput(t *testing.T) {
	b := ref.New()
	other := ref.New()
	conv, _ := layer.NewConv2D(b, "conv2", layer.Conv2DConfig{In: 3, Out: 8, Kernel: 3, Pad: 1})
	fc, _ := layer.NewDense(b, "fc", layer.DenseConfig{In: 10, Out: 2})
	bn, _ := layer.NewBatchNorm(b, "bn1", layer.BatchNormConfig{Channels: 4})
	pool := layer.NewMaxPool2("pool1")
	ps, _ := layer.NewPixelShuffle("ps", 2)
	view, _ := layer.NewReshape("view", 4, 2, 2)
	x4 := mustT(t, b, make([]float32, 2*4*5*5), 2, 4, 5, 5)
	x1 := mustT(t, b, make([]float32, 1*4), 1, 4)
	xo := mustT(t, other, make([]float32, 2*3*5*5), 2, 3, 5, 5)
	tiny := mustT(t, b, make([]float32, 1*3*1*1), 1, 3, 1, 1)
	cases := []struct {
		name string
		run  func() error
		want []string
	}{
		{"conv channels", func() error { _, err := conv.Forward(x4, layer.Infer); return err }, []string{"conv2", "[2 4 5 5]", "[N 3 H W]"}},
		{"conv other backend", func() error { _, err := conv.Forward(xo, layer.Infer); return err }, []string{"conv2", "backend"}},
		{"conv nil", func() error { _, err := conv.Forward(nil, layer.Infer); return err }, []string{"conv2", "nil"}},
		{"conv too small", func() error {
			c, _ := layer.NewConv2D(b, "big", layer.Conv2DConfig{In: 3, Out: 1, Kernel: 5})
			defer c.Free()
			_, err := c.Forward(tiny, layer.Infer)
			return err
		}, []string{"big", "smaller"}},
		{"dense features", func() error { _, err := fc.Forward(x4, layer.Infer); return err }, []string{"fc", "[2 4 5 5]", "[N 10]"}},
		{"batchnorm channels", func() error { _, err := bn.Forward(tiny, layer.Infer); return err }, []string{"bn1", "[1 3 1 1]", "4"}},
		{"batchnorm one value per channel", func() error { _, err := bn.Forward(x1, layer.Train); return err }, []string{"bn1", "one value"}},
		{"maxpool odd", func() error { _, err := pool.Forward(x4, layer.Infer); return err }, []string{"pool1", "even"}},
		{"pixelshuffle channels", func() error { _, err := ps.Forward(tiny, layer.Infer); return err }, []string{"ps", "divisible by 4"}},
		{"reshape size", func() error { _, err := view.Forward(tiny, layer.Infer); return err }, []string{"view", "[4 2 2]"}},
		{"backward without forward", func() error {
			c, _ := layer.NewConv2D(b, "fresh", layer.Conv2DConfig{In: 3, Out: 1, Kernel: 1})
			defer c.Free()
			_, err := c.Backward(tiny)
			if !errors.Is(err, layer.ErrNoForward) {
				t.Errorf("want ErrNoForward, got %v", err)
			}
			return err
		}, []string{"fresh"}},
		{"backward after infer", func() error {
			if _, err := bn.Forward(x4, layer.Infer); err != nil {
				return nil
			}
			_, err := bn.Backward(x4)
			return err
		}, []string{"bn1", "training-mode"}},
		{"backward wrong shape", func() error {
			if _, err := bn.Forward(x4, layer.Train); err != nil {
				return nil
			}
			_, err := bn.Backward(tiny)
			return err
		}, []string{"bn1", "[1 3 1 1]", "[2 4 5 5]"}},
		{"zero-size tensor", func() error { _, err := tensor.New(b, 2, 0, 3); return err }, []string{"[2 0 3]"}},
	}
	for _, c := range cases {
		err := c.run()
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}
}

func TestCheckFinite(t *testing.T) {
	b := ref.New()
	net := generator(t, b)
	defer net.Free()
	net.CheckFinite = true
	z := mustT(t, b, uniform(rand.New(rand.NewPCG(1, 2)), 2*16, -1, 1), 2, 16)
	if _, err := net.Forward(z, layer.Train); err != nil {
		t.Fatal(err)
	}
	w := layer.Lookup(net, "conv1.weight").Value
	h := host(t, w)
	h[5] = float32(math.NaN())
	if err := w.CopyFromHost(h); err != nil {
		t.Fatal(err)
	}
	_, err := net.Forward(z, layer.Train)
	var nf *tensor.NonFiniteError
	if err == nil || !strings.Contains(err.Error(), "layer conv1") || !errors.As(err, &nf) {
		t.Errorf("err %v, want a non-finite error naming conv1", err)
	}
}
