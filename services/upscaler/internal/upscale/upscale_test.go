package upscale

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/platform/batch"
	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/platform/hotswap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var lim = Limits{MaxImages: 16, MaxInputSide: 512, MaxOutputSide: 1024, MaxCallOutputPixels: 4 << 20}

func TestCheckScale(t *testing.T) {
	for _, tt := range []struct{ scale, model, passes int }{{2, 2, 1}, {4, 2, 2}, {8, 2, 3}, {3, 2, 0}, {1, 2, 0}, {4, 4, 1}} {
		got, err := CheckScale(tt.scale, tt.model)
		if got != tt.passes || (err == nil) != (tt.passes > 0) {
			t.Errorf("CheckScale(%d, %d) = %d, %v; want %d passes", tt.scale, tt.model, got, err, tt.passes)
		}
	}
}

func TestCheckHeader(t *testing.T) {
	for _, tt := range []struct {
		w, h, ch, n, scale int
		msg                string
	}{
		{8, 8, 3, 192, 2, ""},
		{8, 8, 4, 256, 2, "channels must be 3"},
		{0, 8, 3, 0, 2, "between 1 and 512"},
		{1 << 30, 1 << 30, 3, 0, 2, "between 1 and 512"}, // no overflow, no allocation
		{512, 8, 3, 512 * 8 * 3, 4, "over the largest output side"},
		{8, 8, 3, 191, 2, "has 191 bytes"},
	} {
		err := lim.CheckHeader("img", tt.w, tt.h, tt.ch, tt.n, tt.scale)
		if (tt.msg == "") != (err == nil) || (err != nil && (!strings.Contains(err.Error(), tt.msg) || fault.KindOf(err) != fault.KindInvalid)) {
			t.Errorf("CheckHeader(%d×%d ch%d %dB ×%d) = %v, want %q", tt.w, tt.h, tt.ch, tt.n, tt.scale, err, tt.msg)
		}
	}
}

func TestBatchesOnlyEqualSizes(t *testing.T) {
	be, err := choose.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	net, err := model.Build("espcn-x2", be, model.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(net, "sr")
	if err != nil {
		t.Fatal(err)
	}
	holder := hotswap.New[*Model](nil, Release)
	defer holder.Close()
	holder.Set(m, "sha256:x", "mem")
	s, err := New(holder, batch.Config{MaxBatch: 8, MaxWait: 100 * time.Millisecond, QueueSize: 32}, lim, DefaultMemory, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	var wg sync.WaitGroup
	var mu sync.Mutex
	batchOf := map[int][]int{} // width → batch sizes seen
	for i := range 6 {
		w := 8 + 4*(i%2) // three 8-wide, three 12-wide
		wg.Go(func() {
			res, err := s.Upscale(context.Background(), Request{Images: []*imageio.RGB{imageio.NewRGB(w, 6)}, Scale: 4})
			if err != nil {
				t.Error(err)
				return
			}
			if res[0].Image.W != 4*w || res[0].Image.H != 24 || len(res[0].Passes) != 2 {
				t.Errorf("%d-wide: got %dx%d in %d passes", w, res[0].Image.W, res[0].Image.H, len(res[0].Passes))
			}
			mu.Lock()
			batchOf[w] = append(batchOf[w], res[0].Passes[0].BatchSize)
			mu.Unlock()
		})
	}
	wg.Wait()
	for w, sizes := range batchOf {
		for _, n := range sizes {
			if n > 3 {
				t.Fatalf("%d-wide images ran in a batch of %d: sizes were mixed", w, n)
			}
		}
	}

	_, err = s.Upscale(context.Background(), Request{Images: []*imageio.RGB{imageio.NewRGB(512, 512), imageio.NewRGB(512, 512), imageio.NewRGB(512, 512), imageio.NewRGB(512, 512), imageio.NewRGB(512, 512)}, Scale: 2})
	if !errors.Is(err, fault.KindInvalid) || !strings.Contains(err.Error(), "split it") {
		t.Fatalf("over the call pixel budget: %v", err)
	}
}

// TestCPUBatchesAreCappedByPixels: on a CPU backend a batch holds at most
// MaxBatchPixels input pixels, whatever --max-batch says, so 64² images run in
// batches of at most 2.
func TestCPUBatchesAreCappedByPixels(t *testing.T) {
	be, err := choose.Open("cpu")
	if err != nil {
		t.Skip(err)
	}
	defer be.Close()
	net, err := model.Build("espcn-x2", be, model.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(net, "sr")
	if err != nil {
		t.Fatal(err)
	}
	holder := hotswap.New[*Model](nil, Release)
	defer holder.Close()
	holder.Set(m, "sha256:x", "mem")
	s, err := New(holder, batch.Config{MaxBatch: 8, MaxWait: time.Second, QueueSize: 32}, lim, DefaultMemory, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	const side = 64
	limit := MaxBatchPixels / (side * side)
	var wg sync.WaitGroup
	for range 2 * limit {
		wg.Go(func() {
			res, err := s.Upscale(context.Background(), Request{Images: []*imageio.RGB{imageio.NewRGB(side, side)}, Scale: 2})
			if err != nil {
				t.Error(err)
				return
			}
			if n := res[0].Passes[0].BatchSize; n > limit || res[0].Image.W != 2*side {
				t.Errorf("%d² image ran in a batch of %d (limit %d), came back %d wide", side, n, limit, res[0].Image.W)
			}
		})
	}
	wg.Wait()
}

// serviceFor serves net under the name "m" with a small batcher.
func serviceFor(t *testing.T, net *model.Network) *Service {
	t.Helper()
	s, _ := serviceWith(t, net, DefaultMemory)
	return s
}

// serviceWith serves net under the name "m" with a small batcher and mem's
// bounds, and returns the version it serves.
func serviceWith(t *testing.T, net *model.Network, mem Memory) (*Service, *hotswap.Version[*Model]) {
	t.Helper()
	m, err := NewModel(net, "m")
	if err != nil {
		t.Fatal(err)
	}
	holder := hotswap.New[*Model](nil, Release)
	t.Cleanup(holder.Close)
	v := holder.Set(m, "sha256:x", "mem")
	s, err := New(holder, batch.Config{MaxBatch: 4, MaxWait: time.Millisecond, QueueSize: 16}, lim, mem, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, v
}

// testImage has a different value in every channel of every pixel.
func testImage(w, h int) *imageio.RGB {
	img := imageio.NewRGB(w, h)
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	return img
}

func TestPixelRangeRoundTrips(t *testing.T) {
	// A network that only repeats pixels (nearest ×2) must give back exactly
	// the input's bytes, in either range: [0,255] → the model's floats → [0,255]
	// is the identity, whichever convention the model was trained in.
	be, err := choose.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	for _, r := range []model.Range{model.Signed, model.Unit} {
		cfg := model.Config{Preset: "nearest-" + string(r), Role: model.Upscaler, Side: 8, Channels: 3, Scale: 2, Range: r, Init: "pytorch",
			Layers: []model.Spec{{Op: model.OpUpsample, Name: "up"}}}
		net, err := model.BuildConfig(cfg, be, 1)
		if err != nil {
			t.Fatal(err)
		}
		s := serviceFor(t, net)
		in := testImage(12, 8)
		res, err := s.Upscale(context.Background(), Request{Images: []*imageio.RGB{in}, Scale: 4})
		if err != nil {
			t.Fatal(err)
		}
		out := res[0].Image
		if out.W != 48 || out.H != 32 {
			t.Fatalf("%s: %d×%d, want 48×32", r, out.W, out.H)
		}
		for y := range out.H {
			for x := range out.W {
				r1, g1, b1 := out.At(x, y)
				r0, g0, b0 := in.At(x/4, y/4)
				if r1 != r0 || g1 != g0 || b1 != b0 {
					t.Fatalf("%s: pixel (%d,%d) = %d,%d,%d, want %d,%d,%d", r, x, y, r1, g1, b1, r0, g0, b0)
				}
			}
		}
	}
}

func TestUpSamplerServes(t *testing.T) {
	// The multi-stage GAN's Up Sampler (signed range, two max-pools) served
	// as an upscaler: ×2 at its trained side and at others divisible by 4,
	// and InvalidArgument, before any compute, for a side it cannot take.
	be, err := choose.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	net, err := model.Build("upsampler-stable", be, model.Options{Side: 32, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	s := serviceFor(t, net)
	ctx := context.Background()
	for _, tt := range []struct{ w, h, scale int }{{32, 32, 2}, {64, 64, 2}, {16, 12, 4}} {
		in := testImage(tt.w, tt.h)
		// The engine's own answer for the same network and image: the
		// service converts pixels exactly as model.Network.Upscale does.
		want, err := net.Upscale(ctx, []*imageio.RGB{in})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Upscale(ctx, Request{Images: []*imageio.RGB{in}, Scale: tt.scale})
		if err != nil {
			t.Fatalf("%d×%d ×%d: %v", tt.w, tt.h, tt.scale, err)
		}
		out := res[0].Image
		if out.W != tt.w*tt.scale || out.H != tt.h*tt.scale || res[0].Model.Preset != "upsampler-stable" || len(res[0].Passes) != tt.scale/2 {
			t.Fatalf("%d×%d ×%d: got %d×%d, model %+v, %d passes", tt.w, tt.h, tt.scale, out.W, out.H, res[0].Model, len(res[0].Passes))
		}
		if tt.scale == 2 && string(out.Pix) != string(want[0].Pix) {
			t.Fatalf("%d×%d: the service's output differs from the engine's", tt.w, tt.h)
		}
	}
	for _, wh := range [][2]int{{30, 32}, {32, 18}, {2, 2}} {
		_, err := s.Upscale(ctx, Request{Images: []*imageio.RGB{testImage(wh[0], wh[1])}, Scale: 2})
		if fault.KindOf(err) != fault.KindInvalid || !strings.Contains(err.Error(), "multiples of 4") {
			t.Fatalf("%d×%d: %v (kind %v), want InvalidArgument saying multiples of 4", wh[0], wh[1], err, fault.KindOf(err))
		}
	}
}
