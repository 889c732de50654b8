package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/gateway/internal/admit"
	"github.com/hirez-ml/hirez/platform/fault"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var limits = Limits{
	MaxCount: 256, MinSize: 32, MaxSize: 256, DefaultSize: 256,
	MaxEncodedBytes: 8 << 20, MaxInputSide: 512, MaxOutputSide: 1024, Scales: []int{2, 4},
}

// seedGen makes side×side images whose colour is the seed's low byte; it
// knows labels (none when nil) and rejects any other, as a generator does.
type seedGen struct {
	side   int
	labels []string
}

func (g seedGen) Labels(context.Context, ModelRef) (Labels, error) {
	return Labels{Generator: ModelRef{"g", "sha256:g"}, Labels: g.labels}, nil
}

func (g seedGen) Generate(ctx context.Context, seeds []int64, _ ModelRef, label string, yield func(Generated) error) error {
	if label != "" && !slices.Contains(g.labels, label) {
		return fault.Invalid("label %q is not known to model g", label)
	}
	for i, s := range seeds {
		if err := ctx.Err(); err != nil {
			return err
		}
		img := imageio.NewRGB(g.side, g.side)
		for k := range img.Pix {
			img.Pix[k] = byte(s)
		}
		p := Provenance{Seed: s, LatentDim: 100, Generator: ModelRef{"g", "sha256:g"}, Timings: []Timing{{Stage: "generate"}}, Label: label}
		if err := yield(Generated{Index: i, Image: img, Prov: p}); err != nil {
			return err
		}
	}
	return nil
}

// nearest doubles images by pixel repetition; fail, when set, decides errors.
type nearest struct {
	name  string // the model in provenance; "" is "sr"
	calls atomic.Int64
	fail  func(img *imageio.RGB) error
	delay func(img *imageio.RGB) time.Duration
}

func (u *nearest) Upscale(ctx context.Context, img *imageio.RGB, _ ModelRef) (*imageio.RGB, Provenance, error) {
	u.calls.Add(1)
	if u.delay != nil {
		select {
		case <-time.After(u.delay(img)):
		case <-ctx.Done():
			return nil, Provenance{}, ctx.Err()
		}
	}
	if u.fail != nil {
		if err := u.fail(img); err != nil {
			return nil, Provenance{}, err
		}
	}
	out := imageio.NewRGB(2*img.W, 2*img.H)
	for y := 0; y < out.H; y++ {
		for x := 0; x < out.W; x++ {
			r, g, b := img.At(x/2, y/2)
			out.Set(x, y, r, g, b)
		}
	}
	name := u.name
	if name == "" {
		name = "sr"
	}
	return out, Provenance{Upscalers: []ModelRef{{name, "sha256:" + name}}, Timings: []Timing{{Stage: "upscale", BatchSize: 1}}}, nil
}

func collect(t *testing.T, s *Service, r Request) ([]Image, error) {
	t.Helper()
	var mu sync.Mutex
	var out []Image
	err := s.GenerateImages(context.Background(), r, func(img Image) error {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, img)
		return nil
	})
	return out, err
}

func TestGenerateImagesChainsToSize(t *testing.T) {
	up := &nearest{}
	s := New(seedGen{side: 32}, up, limits)
	imgs, err := collect(t, s, Request{Count: 5, Seed: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 5 || up.calls.Load() != 15 {
		t.Fatalf("%d images with %d upscale calls, want 5 and 15 (three ×2 passes each)", len(imgs), up.calls.Load())
	}
	seen := map[int]bool{}
	for _, img := range imgs {
		seen[img.Index] = true
		if img.RGB.W != 256 || img.Seed != 10+int64(img.Index) || img.Prov.Pipeline != DCGANSRCNN || len(img.Prov.Upscalers) != 3 {
			t.Fatalf("image %d: %dpx seed %d prov %+v", img.Index, img.RGB.W, img.Seed, img.Prov)
		}
		texts, err := imageio.ReadText(bytes.NewReader(img.PNG))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, tx := range texts {
			got[tx.Key] = tx.Value
		}
		if got["hirez:seed"] != strconv.FormatInt(img.Seed, 10) || got["hirez:generator"] != "g@sha256:g" ||
			got["hirez:upscalers"] != "sr@sha256:sr,sr@sha256:sr,sr@sha256:sr" || got["hirez:pipeline"] != "DCGAN_SRCNN" || got["hirez:latent_dim"] != "100" {
			t.Fatalf("tEXt chunks %v", got)
		}
	}
	if len(seen) != 5 {
		t.Fatalf("indexes %v", seen)
	}
}

func TestImagesStreamAsTheirChainsFinish(t *testing.T) {
	// Image 0 is slow; image 1 must not wait for it.
	up := &nearest{delay: func(img *imageio.RGB) time.Duration {
		if img.Pix[0] == 0 {
			return 300 * time.Millisecond
		}
		return 0
	}}
	s := New(seedGen{side: 128}, up, limits)
	var order []int
	err := s.GenerateImages(context.Background(), Request{Count: 2, Seed: 256}, func(img Image) error {
		order = append(order, img.Index)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != 2 || order[0] != 1 {
		t.Fatalf("order %v, want image 1 first", order)
	}
}

func TestValidation(t *testing.T) {
	s := New(seedGen{side: 32}, &nearest{}, limits)
	tests := []struct {
		name string
		r    Request
		kind fault.Kind
		msg  string
	}{
		{"zero count", Request{Count: 0}, fault.KindInvalid, "count must be between 1 and 256, got 0"},
		{"negative count", Request{Count: -3}, fault.KindInvalid, "got -3"},
		{"too many", Request{Count: 257}, fault.KindInvalid, "got 257"},
		{"size not power of two", Request{Count: 1, Size: 100}, fault.KindInvalid, "power of two"},
		{"size too big", Request{Count: 1, Size: 512}, fault.KindInvalid, "got 512"},
		{"multistage without a pool", Request{Count: 1, Pipeline: MultiStage}, fault.KindFailedPrecondition, "needs an Up Sampler model: this gateway has no pool of upscalers serving one (start it with --upsampler-target"},
		{"single without a pool", Request{Count: 1, Pipeline: SingleDCGAN, Size: 32}, fault.KindFailedPrecondition, "this gateway has no pool of generators serving one (start it with --single-generator-target"},
		{"single with upscaler", Request{Count: 1, Pipeline: SingleDCGAN, Upscaler: ModelRef{Name: "x"}}, fault.KindInvalid, "leave upscaler unset"},
		{"unknown kind", Request{Count: 1, Pipeline: Kind(9)}, fault.KindInvalid, "unknown pipeline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := collect(t, s, tt.r)
			if fault.KindOf(err) != tt.kind || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v (kind %v), want %v containing %q", err, fault.KindOf(err), tt.kind, tt.msg)
			}
		})
	}
	// Seed 0 picks a random non-zero base.
	imgs, err := collect(t, s, Request{Count: 1, Size: 32})
	if err != nil || imgs[0].Seed == 0 {
		t.Fatalf("seed 0: %v, %v", imgs, err)
	}
}

func TestFirstErrorCancelsTheRest(t *testing.T) {
	overloaded := fault.Overloaded("queue full")
	up := &nearest{
		fail: func(img *imageio.RGB) error {
			if img.Pix[0] == 3 {
				return overloaded
			}
			return nil
		},
		delay: func(img *imageio.RGB) time.Duration {
			if img.Pix[0] == 3 {
				return 0
			}
			return time.Minute // the others would hang without cancellation
		},
	}
	s := New(seedGen{side: 32}, up, limits)
	start := time.Now()
	_, err := collect(t, s, Request{Count: 8, Seed: 1})
	if !errors.Is(err, overloaded) {
		t.Fatalf("err = %v, want the upscaler's overload passed through", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("other chains were not cancelled")
	}
}

func TestClientHangUpCancelsDownstream(t *testing.T) {
	up := &nearest{delay: func(*imageio.RGB) time.Duration { return time.Minute }}
	s := New(seedGen{side: 32}, up, limits)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.GenerateImages(ctx, Request{Count: 4, Seed: 1}, func(Image) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
}

func encodePNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	img.Set(0, 0, color.NRGBA{1, 2, 3, 0}) // transparent: composited over white
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestUpscaleCallerImage(t *testing.T) {
	up := &nearest{}
	s := New(seedGen{side: 32}, up, limits)
	img, err := s.Upscale(context.Background(), encodePNG(t, 20, 10), 4, ModelRef{})
	if err != nil {
		t.Fatal(err)
	}
	if img.RGB.W != 80 || img.RGB.H != 40 || len(img.Prov.Upscalers) != 2 {
		t.Fatalf("%dx%d, %d passes", img.RGB.W, img.RGB.H, len(img.Prov.Upscalers))
	}
	if r, g, b := img.RGB.At(0, 0); r != 255 || g != 255 || b != 255 {
		t.Fatalf("transparent pixel is %d,%d,%d, want white", r, g, b)
	}

	// A PNG header claiming 100000×100000: refused from the header alone.
	bomb := encodePNG(t, 1, 1)
	bomb[16], bomb[17], bomb[18], bomb[19] = 0, 1, 0x86, 0xa0 // width 100000
	bomb[20], bomb[21], bomb[22], bomb[23] = 0, 1, 0x86, 0xa0 // height 100000
	binary.BigEndian.PutUint32(bomb[29:33], crc32.ChecksumIEEE(bomb[12:29]))
	calls := up.calls.Load()
	tests := []struct {
		name  string
		data  []byte
		scale int
		msg   string
	}{
		{"empty", nil, 2, "image is empty"},
		{"one byte", []byte{0x89}, 2, "not a decodable"},
		{"garbage", []byte("hello, world"), 2, "not a decodable"},
		{"bomb", bomb, 2, "too large"},
		{"too big for x4", encodePNG(t, 300, 10), 4, "at most 256"},
		{"scale 3", encodePNG(t, 8, 8), 3, "scale must be one of"},
		{"too many bytes", make([]byte, 8<<20+1), 2, "at most 8388608"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Upscale(context.Background(), tt.data, tt.scale, ModelRef{})
			if fault.KindOf(err) != fault.KindInvalid || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want invalid containing %q", err, tt.msg)
			}
		})
	}
	if up.calls.Load() != calls {
		t.Fatal("a rejected image reached the upscaler")
	}
}

// provNames lists the generator and upscaler names of p.
func provNames(p Provenance) string {
	names := []string{p.Generator.Name}
	for _, u := range p.Upscalers {
		names = append(names, u.Name)
	}
	return strings.Join(names, ",")
}

// seedGenNamed is seedGen with its own model name in provenance.
type seedGenNamed struct {
	seedGen
	name string
}

func (g seedGenNamed) Labels(context.Context, ModelRef) (Labels, error) {
	return Labels{Generator: ModelRef{g.name, "sha256:" + g.name}, Labels: g.labels}, nil
}

func (g seedGenNamed) Generate(ctx context.Context, seeds []int64, m ModelRef, label string, yield func(Generated) error) error {
	return g.seedGen.Generate(ctx, seeds, m, label, func(gen Generated) error {
		gen.Prov.Generator = ModelRef{g.name, "sha256:" + g.name}
		return yield(gen)
	})
}

func TestEachPipelineRunsItsOwnStages(t *testing.T) {
	sr, ups := &nearest{name: "sr"}, &nearest{name: "ups"}
	s := New(seedGen{side: 32}, sr, limits, WithUpsampler(ups), WithSingleGenerator(seedGenNamed{seedGen{side: 64}, "g64"}))
	tests := []struct {
		name               string
		r                  Request
		side               int
		names              string // generator, then each ×2 pass
		srCalls, upsCalls  int64
		wantPipeline, text string
	}{
		{"default is DCGAN+SRCNN", Request{Count: 2, Seed: 5}, 256, "g,sr,sr,sr", 6, 0, "DCGAN_SRCNN", "sr@sha256:sr,sr@sha256:sr,sr@sha256:sr"},
		{"multi-stage to 256", Request{Count: 2, Seed: 5, Pipeline: MultiStage}, 256, "g,ups,ups,ups", 0, 6, "MULTISTAGE_GAN", "ups@sha256:ups,ups@sha256:ups,ups@sha256:ups"},
		{"multi-stage to 64", Request{Count: 3, Seed: 5, Pipeline: MultiStage, Size: 64}, 64, "g,ups", 0, 3, "MULTISTAGE_GAN", "ups@sha256:ups"},
		{"single at its side", Request{Count: 2, Seed: 5, Pipeline: SingleDCGAN, Size: 64}, 64, "g64", 0, 0, "SINGLE_DCGAN", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sr.calls.Store(0)
			ups.calls.Store(0)
			imgs, err := collect(t, s, tt.r)
			if err != nil || len(imgs) != tt.r.Count {
				t.Fatalf("%d images, %v", len(imgs), err)
			}
			if sr.calls.Load() != tt.srCalls || ups.calls.Load() != tt.upsCalls {
				t.Fatalf("SR calls %d, Up Sampler calls %d; want %d and %d", sr.calls.Load(), ups.calls.Load(), tt.srCalls, tt.upsCalls)
			}
			for _, img := range imgs {
				if img.RGB.W != tt.side || img.RGB.H != tt.side || provNames(img.Prov) != tt.names || img.Prov.Pipeline.String() != tt.wantPipeline {
					t.Fatalf("image %d: %d×%d, models %s, pipeline %v; want %d², %s, %s", img.Index, img.RGB.W, img.RGB.H, provNames(img.Prov), img.Prov.Pipeline, tt.side, tt.names, tt.wantPipeline)
				}
				// The seed's colour survives the chain (nearest keeps pixels).
				if img.RGB.Pix[len(img.RGB.Pix)-1] != byte(img.Seed) {
					t.Fatalf("image %d: last pixel %d, want the seed's %d", img.Index, img.RGB.Pix[len(img.RGB.Pix)-1], byte(img.Seed))
				}
				texts, err := imageio.ReadText(bytes.NewReader(img.PNG))
				if err != nil {
					t.Fatal(err)
				}
				kv := map[string]string{}
				for _, tx := range texts {
					kv[tx.Key] = tx.Value
				}
				if kv["hirez:pipeline"] != tt.wantPipeline || kv["hirez:upscalers"] != tt.text || !strings.HasPrefix(kv["hirez:generator"], strings.Split(tt.names, ",")[0]+"@") {
					t.Fatalf("image %d tEXt %v", img.Index, kv)
				}
			}
		})
	}
}

func TestSingleDCGANAtAnotherSizeNamesTheServedSide(t *testing.T) {
	s := New(seedGen{side: 32}, &nearest{}, limits, WithSingleGenerator(seedGen{side: 64}))
	for _, size := range []int{32, 128, 256} {
		_, err := collect(t, s, Request{Count: 2, Pipeline: SingleDCGAN, Size: size})
		if fault.KindOf(err) != fault.KindInvalid || !strings.Contains(err.Error(), "trained at 64 px, so size must be 64") {
			t.Fatalf("size %d: %v (kind %v), want InvalidArgument naming 64 px", size, err, fault.KindOf(err))
		}
	}
}

func TestMultiStageStageErrorsPassThrough(t *testing.T) {
	// The Up Sampler pool's own status (here: a side it cannot take) reaches
	// the caller with its kind, and the message says which stage failed.
	ups := &nearest{name: "ups", fail: func(img *imageio.RGB) error {
		if img.W == 64 {
			return fault.Invalid("images[0] is 64×64; model ups takes sides divisible by 128")
		}
		return nil
	}}
	s := New(seedGen{side: 32}, &nearest{}, limits, WithUpsampler(ups))
	_, err := collect(t, s, Request{Count: 2, Pipeline: MultiStage, Size: 256})
	if fault.KindOf(err) != fault.KindInvalid || !strings.Contains(err.Error(), "Up Sampler ×2 of 64×64") || !strings.Contains(err.Error(), "divisible by 128") {
		t.Fatalf("err = %v (kind %v)", err, fault.KindOf(err))
	}
}

// TestLabelReachesTheGeneratorAndTheProvenance: the pipeline passes the label
// to the generator that serves the request, records an accepted one in the
// provenance and the PNG tEXt (hirez:label), and relays the generator's
// refusal of an unknown one unchanged, before any image is upscaled.
func TestLabelReachesTheGeneratorAndTheProvenance(t *testing.T) {
	up := &nearest{}
	smileys := []string{"Smileys & Emotion"}
	s := New(seedGen{side: 32, labels: smileys}, up, limits,
		WithSingleGenerator(seedGenNamed{seedGen{side: 64, labels: []string{"Flags"}}, "g64"}))
	for _, tt := range []struct {
		name string
		r    Request
	}{
		{"default pipeline", Request{Count: 2, Seed: 3, Size: 64, Label: "Smileys & Emotion"}},
		{"single DCGAN", Request{Count: 1, Seed: 3, Size: 64, Pipeline: SingleDCGAN, Label: "Flags"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			imgs, err := collect(t, s, tt.r)
			if err != nil || len(imgs) != tt.r.Count {
				t.Fatalf("%d images, %v", len(imgs), err)
			}
			for _, img := range imgs {
				texts, err := imageio.ReadText(bytes.NewReader(img.PNG))
				if err != nil {
					t.Fatal(err)
				}
				kv := map[string]string{}
				for _, tx := range texts {
					kv[tx.Key] = tx.Value
				}
				if img.Prov.Label != tt.r.Label || kv["hirez:label"] != tt.r.Label {
					t.Fatalf("image %d: provenance label %q, tEXt %v; want %q", img.Index, img.Prov.Label, kv, tt.r.Label)
				}
			}
		})
	}
	imgs, err := collect(t, s, Request{Count: 1, Seed: 3, Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	if texts, _ := imageio.ReadText(bytes.NewReader(imgs[0].PNG)); slices.ContainsFunc(texts, func(tx imageio.Text) bool { return tx.Key == "hirez:label" }) {
		t.Fatal("an image made without a label has a hirez:label chunk")
	}
	calls := up.calls.Load()
	for _, r := range []Request{
		{Count: 2, Label: "Flags"}, // the single pool's label, not the default generator's
		{Count: 2, Pipeline: SingleDCGAN, Size: 64, Label: "Smileys & Emotion"},
	} {
		if _, err := collect(t, s, r); fault.KindOf(err) != fault.KindInvalid || !strings.Contains(err.Error(), "is not known to model g") {
			t.Fatalf("%+v: %v, want the generator's invalid argument", r, err)
		}
	}
	if up.calls.Load() != calls {
		t.Fatal("an image of a rejected label reached the upscaler")
	}
}

func TestListLabelsAsksThePipelinesPool(t *testing.T) {
	s := New(seedGen{side: 32, labels: []string{"Smileys & Emotion"}}, &nearest{}, limits,
		WithSingleGenerator(seedGenNamed{seedGen{side: 64}, "g64"}))
	for _, tt := range []struct {
		k      Kind
		gen    string
		labels []string
	}{
		{Default, "g", []string{"Smileys & Emotion"}},
		{DCGANSRCNN, "g", []string{"Smileys & Emotion"}},
		{SingleDCGAN, "g64", nil},
	} {
		got, err := s.ListLabels(context.Background(), tt.k, ModelRef{})
		if err != nil || got.Generator.Name != tt.gen || !slices.Equal(got.Labels, tt.labels) {
			t.Fatalf("ListLabels(%v) = %+v, %v; want %s with %q", tt.k, got, err, tt.gen, tt.labels)
		}
	}
	if _, err := s.ListLabels(context.Background(), MultiStage, ModelRef{}); fault.KindOf(err) != fault.KindFailedPrecondition || !strings.Contains(err.Error(), UpsamplerFlag) {
		t.Fatalf("ListLabels(MultiStage) without the pool: %v", err)
	}
	if _, err := s.ListLabels(context.Background(), Kind(9), ModelRef{}); fault.KindOf(err) != fault.KindInvalid {
		t.Fatalf("ListLabels(Kind(9)): %v", err)
	}
}

// TestAccountedBytesStayUnderTheBound: 16 concurrent requests of 12 images
// against a budget of five chains at 64 px: every request completes, the
// accounted bytes never pass the budget, and each image's own bytes (its
// pixels and PNG) fit what admission accounted for it.
func TestAccountedBytesStayUnderTheBound(t *testing.T) {
	const side, count = 64, 12
	budget := 5 * ChainBytes(side)
	adm := admit.New(admit.Config{MaxChains: 64, RequestChains: 32, MaxBytes: budget, MaxBacklog: 16 * count})
	up := &nearest{delay: func(*imageio.RGB) time.Duration { return time.Millisecond }}
	s := New(seedGen{side: 32}, up, limits, WithAdmission(adm))
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			n := 0
			err := s.GenerateImages(context.Background(), Request{Count: count, Seed: int64(1 + 100*i), Size: side, Client: strconv.Itoa(i % 4)}, func(img Image) error {
				n++
				if got := int64(len(img.PNG) + len(img.RGB.Pix)); got > ChainBytes(side) {
					t.Errorf("image of %d bytes, accounted %d", got, ChainBytes(side))
				}
				if st := adm.Stats(); st.Bytes > budget {
					t.Errorf("accounted %d bytes in flight, budget %d", st.Bytes, budget)
				}
				return nil
			})
			if err != nil || n != count {
				t.Errorf("request %d: %d images, %v", i, n, err)
			}
		})
	}
	wg.Wait()
	if st := adm.Stats(); st.PeakBytes > budget || st.PeakBytes == 0 || st.Bytes != 0 || st.Backlog != 0 {
		t.Fatalf("stats %+v, budget %d", st, budget)
	}
}

// TestRefusedBeforeAnyWork: a request that finds the backlog full is
// refused with a retry hint before the generator is called.
func TestRefusedBeforeAnyWork(t *testing.T) {
	adm := admit.New(admit.Config{MaxChains: 1, RequestChains: 1, MaxBytes: 1 << 30, MaxBacklog: 8})
	hold := make(chan struct{})
	up := &nearest{delay: func(*imageio.RGB) time.Duration { <-hold; return 0 }}
	s := New(seedGen{side: 32}, up, limits, WithAdmission(adm))
	done := make(chan error)
	go func() { _, err := collect(t, s, Request{Count: 8, Seed: 1}); done <- err }()
	for up.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	calls := up.calls.Load()
	_, err := collect(t, s, Request{Count: 1, Seed: 99})
	var f *fault.Error
	if !errors.As(err, &f) || f.Kind != fault.KindOverloaded || f.RetryAfter <= 0 {
		t.Fatalf("second request: %v, want overloaded with a retry hint", err)
	}
	if up.calls.Load() != calls {
		t.Fatal("the refused request did work")
	}
	close(hold)
	if err := <-done; err != nil {
		t.Fatalf("the admitted request: %v", err)
	}
}
