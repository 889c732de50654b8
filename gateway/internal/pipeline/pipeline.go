// Package pipeline is the gateway's domain: it chains a generator and
// upscalers into the study's pipelines, streams each image as soon as its chain
// is done, and stamps provenance into every image. It declares the small
// Generator and Upscaler interfaces it needs (implemented over gRPC by package
// downstream, and in-process by tests and benchmarks) and knows nothing of gRPC.
package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/gateway/internal/admit"
	"github.com/hirez-ml/hirez/platform/fault"
)

// Kind is one of the study's three ways to make an image.
type Kind int

// The pipelines; the zero value reads as DCGANSRCNN.
const (
	Default     Kind = iota
	DCGANSRCNN       // DCGAN at h, then a super-resolution model ×2 until the size
	MultiStage       // DCGAN at h, then the adversarial Up Sampler ×2 until the size
	SingleDCGAN      // one DCGAN at the requested size
)

func (k Kind) String() string {
	switch k {
	case Default, DCGANSRCNN:
		return "DCGAN_SRCNN"
	case MultiStage:
		return "MULTISTAGE_GAN"
	case SingleDCGAN:
		return "SINGLE_DCGAN"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ModelRef names a model and version; empty means the server's default.
type ModelRef struct {
	Name, Version string
}

// String is name@version, the form written into PNG tEXt chunks.
func (m ModelRef) String() string { return m.Name + "@" + m.Version }

// Timing is one stage of one image.
type Timing struct {
	Stage     string
	Duration  time.Duration
	BatchSize int
	Backend   string
}

// Provenance says how an image was made.
type Provenance struct {
	Seed       int64
	FromLatent bool
	LatentDim  int
	Generator  ModelRef
	Upscalers  []ModelRef
	Pipeline   Kind
	Timings    []Timing
	// Label is the request's label as the generator accepted it ("" for none).
	Label string
}

// Generated is one generator output.
type Generated struct {
	Index int
	Image *imageio.RGB
	Prov  Provenance
}

// Generator makes one image per seed and calls yield with each, in index
// order, as it is done; label is "" or one of the labels of the version that
// serves the call, which checks it (INVALID_ARGUMENT otherwise) and records it
// in the provenance. Labels returns that version's labels. Errors are passed
// through to the caller unchanged.
type Generator interface {
	Generate(ctx context.Context, seeds []int64, model ModelRef, label string, yield func(Generated) error) error
	Labels(ctx context.Context, model ModelRef) (Labels, error)
}

// Labels are the labels a generator version knows.
type Labels struct {
	// Generator is the version that answered (name and resolved digest).
	Generator ModelRef
	// Labels are empty for a model with none (trained on every emoji).
	Labels []string
}

// Upscaler runs one ×2 pass over one image and returns the result with the
// upscaler's provenance (Upscalers and Timings only).
type Upscaler interface {
	Upscale(ctx context.Context, img *imageio.RGB, model ModelRef) (*imageio.RGB, Provenance, error)
}

// Limits of the public API, passed in by the transport.
type Limits struct {
	MaxCount        int   // images per GenerateImages call
	MinSize         int   // smallest output side
	MaxSize         int   // largest output side
	DefaultSize     int   // output side when the request says 0
	MaxEncodedBytes int   // encoded image of Upscale
	MaxInputSide    int   // decoded image of Upscale
	MaxOutputSide   int   // output of Upscale
	Scales          []int // allowed Upscale factors
}

// Request asks for Count images.
type Request struct {
	Count     int
	Seed      int64 // 0: a random non-zero base
	Pipeline  Kind
	Size      int // 0: Limits.DefaultSize
	Generator ModelRef
	Upscaler  ModelRef
	// Label is "" (no constraint) or a label of the serving generator; the
	// generator checks it, against the version that serves the request.
	Label string
	// Client names the caller for fair queueing (its address, say); requests
	// of one client share its turn. "" gives the request a turn of its own.
	Client string
	// Previews asks for every intermediate image of every chain as well
	// (Image.Stage not Final): the generator's output and each ×2 pass's but
	// the last, each sent before the image's final.
	Previews bool
}

// Stage says which stage of a chain made an Image.
type Stage int

// The stages; the zero value is a final image, so a caller that never asks
// for previews never has to look.
const (
	Final         Stage = iota // the finished image at the request's size
	FromGenerator              // a preview: the generator's output
	FromUpscale                // a preview: the output of ×2 pass Image.Pass, not the last
)

func (st Stage) String() string {
	switch st {
	case Final:
		return "final"
	case FromGenerator:
		return "generator"
	case FromUpscale:
		return "upscale"
	}
	return fmt.Sprintf("Stage(%d)", int(st))
}

// Image is one image GenerateImages sends: a finished image (Stage Final)
// or, when the request asked for previews, a preview of image Index.
type Image struct {
	Index int
	Seed  int64
	RGB   *imageio.RGB
	PNG   []byte
	// Prov is the provenance so far: a preview's lists the passes that ran
	// before it and no timings of its own.
	Prov  Provenance
	Stage Stage
	// Pass is the ×2 pass that made a FromUpscale preview, 1 for the first.
	Pass int
}

// Service runs pipelines; build it with New.
type Service struct {
	gen Generator // the DCGAN at h of DCGANSRCNN and MultiStage
	up  Upscaler  // the super-resolution ×2 of DCGANSRCNN
	// The optional pools, nil when the gateway has none: MultiStage's
	// adversarial Up Sampler ×2 and SingleDCGAN's generator.
	upsampler Upscaler
	single    Generator
	lim       Limits
	// admit decides which requests run and paces their chains.
	admit *admit.Controller
}

// Option adds an optional pool to a Service.
type Option func(*Service)

// WithUpsampler serves MultiStage: images from the default generator are
// doubled by up, a pool serving the multi-stage GAN's Up Sampler.
func WithUpsampler(up Upscaler) Option { return func(s *Service) { s.upsampler = up } }

// WithAdmission admits and paces requests with c (default: a controller
// with admit.Default's limits, of its own).
func WithAdmission(c *admit.Controller) Option { return func(s *Service) { s.admit = c } }

// WithSingleGenerator serves SingleDCGAN with gen, a pool serving a DCGAN
// trained at the output side.
func WithSingleGenerator(gen Generator) Option { return func(s *Service) { s.single = gen } }

// The flags that configure the optional pools, named in errors so that an
// operator knows what to set. The domain names them (rather than the
// transport) because the messages are the pipeline's.
const (
	UpsamplerFlag       = "--upsampler-target"
	SingleGeneratorFlag = "--single-generator-target"
)

// New returns a service over the default pipeline's generator and upscaler
// and any optional pools.
func New(gen Generator, up Upscaler, lim Limits, opts ...Option) *Service {
	s := &Service{gen: gen, up: up, lim: lim}
	for _, o := range opts {
		o(s)
	}
	if s.admit == nil {
		s.admit = admit.New(admit.Default)
	}
	return s
}

// stages returns the generator and the ×2 upscaler (nil for none) that run
// pipeline k.
func (s *Service) stages(k Kind) (Generator, Upscaler) {
	switch k {
	case MultiStage:
		return s.gen, s.upsampler
	case SingleDCGAN:
		return s.single, nil
	}
	return s.gen, s.up
}

// Validate checks a request without calling anything and returns it with its
// defaults filled in (pipeline, size, seed). The label is not checked here:
// only the generator that serves the request knows its labels.
func (s *Service) Validate(r Request) (Request, error) {
	if r.Count < 1 || r.Count > s.lim.MaxCount {
		return r, fault.Invalid("count must be between 1 and %d, got %d", s.lim.MaxCount, r.Count)
	}
	if r.Size == 0 {
		r.Size = s.lim.DefaultSize
	}
	if r.Size < s.lim.MinSize || r.Size > s.lim.MaxSize || bits.OnesCount(uint(r.Size)) != 1 {
		return r, fault.Invalid("size must be a power of two between %d and %d (0 means %d), got %d", s.lim.MinSize, s.lim.MaxSize, s.lim.DefaultSize, r.Size)
	}
	if r.Pipeline == SingleDCGAN && r.Upscaler != (ModelRef{}) {
		return r, fault.Invalid("pipeline %s runs no upscaler; leave upscaler unset", r.Pipeline)
	}
	if r.Pipeline == SingleDCGAN && r.Previews {
		return r, fault.Invalid("previews: pipeline %s makes each image in one stage, so there is no intermediate image to preview; leave previews unset, or use PIPELINE_DCGAN_SRCNN", r.Pipeline)
	}
	k, err := s.checkPipeline(r.Pipeline)
	if err != nil {
		return r, err
	}
	r.Pipeline = k
	for r.Seed == 0 {
		r.Seed = rand.Int64()
	}
	return r, nil
}

// checkPipeline returns k with Default read as DCGANSRCNN, or an error when k
// is unknown or the gateway has no pool for it.
func (s *Service) checkPipeline(k Kind) (Kind, error) {
	switch k {
	case Default:
		return DCGANSRCNN, nil
	case DCGANSRCNN:
	case MultiStage:
		if s.upsampler == nil {
			return k, fault.FailedPrecondition("pipeline %s needs an Up Sampler model: this gateway has no pool of upscalers serving one (start it with %s, or use PIPELINE_DCGAN_SRCNN)", k, UpsamplerFlag)
		}
	case SingleDCGAN:
		if s.single == nil {
			return k, fault.FailedPrecondition("pipeline %s needs a DCGAN trained at the output size: this gateway has no pool of generators serving one (start it with %s, or use PIPELINE_DCGAN_SRCNN)", k, SingleGeneratorFlag)
		}
	default:
		return k, fault.Invalid("unknown pipeline %d", int(k))
	}
	return k, nil
}

// ListLabels returns the labels a GenerateImages request for pipeline k may
// carry: those of the generator version of k's pool that answers (gen names
// the model; empty = the pool's default).
func (s *Service) ListLabels(ctx context.Context, k Kind, gen ModelRef) (Labels, error) {
	k, err := s.checkPipeline(k)
	if err != nil {
		return Labels{}, err
	}
	g, _ := s.stages(k)
	return g.Labels(ctx, gen)
}

// passes returns the ×2 passes from the generator's side to the request's size.
func passes(r Request, side int) (int, error) {
	if side <= 0 {
		return 0, fmt.Errorf("generator returned a %d px image", side)
	}
	if r.Pipeline == SingleDCGAN {
		if side != r.Size {
			return 0, fault.Invalid("pipeline %s: the single-DCGAN pool serves a generator trained at %d px, so size must be %d, got %d (other sizes need a generator trained at that size behind %s)", r.Pipeline, side, side, r.Size, SingleGeneratorFlag)
		}
		return 0, nil
	}
	n := 0
	for s := side; s < r.Size; s *= 2 {
		n++
	}
	if side<<n != r.Size {
		return 0, fault.Invalid("size %d cannot be reached from the generator's %d px by doubling; use %d times a power of two", r.Size, side, side)
	}
	return n, nil
}

// ChainBytes is what admission accounts for one chain ending at side px:
// four times the final image's raw RGB (3·side² bytes), which covers the
// image, its PNG (BestSpeed stays within the raw size plus a little on
// these images), the last pass's received message and the pass before it
// (a quarter), with room for the proto copies on the way.
func ChainBytes(side int) int64 { return 4 * 3 * int64(side) * int64(side) }

// GenerateImages runs r and calls send with each finished image as soon as
// its chain is done (so possibly out of index order). send is never called
// concurrently. The first error cancels all outstanding work.
//
// With r.Previews, send also gets every intermediate image of a chain as a
// preview (Stage not Final), in stage order and before that chain's final
// image. A preview is encoded and sent while the chain's next ×2 pass runs,
// so it adds no time to the chain unless the reader is slower than the
// upscaler; a chain with no pass (size = the generator's side) has none.
//
// Admission (package admit) refuses a request before its first image, or
// never: once admitted, its chains wait for their turn rather than fail.
// A chain holds its grant until send returns, so a slow reader paces its
// own request and the generator stream behind it (gRPC flow control).
// Previews are made and sent under the same grant, and fit in its
// ChainBytes: the largest is a quarter of the final image's pixels.
func (s *Service) GenerateImages(ctx context.Context, r Request, send func(Image) error) error {
	r, err := s.Validate(r)
	if err != nil {
		return err
	}
	ticket, err := s.admit.Admit(ctx, r.Client, r.Count, ChainBytes(r.Size))
	if err != nil {
		return err
	}
	defer ticket.Done()
	seeds := make([]int64, r.Count)
	for i := range seeds {
		seeds[i] = r.Seed + int64(i) // wraps around, as the API says
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg     sync.WaitGroup
		sendMu sync.Mutex
		n      = -1 // passes, known from the first image
	)
	fail := func(err error) { cancel(err) }
	// sendLocked sends one message under sendMu, unless the request has
	// already failed.
	sendLocked := func(img Image) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
		return send(img)
	}
	var preview func(Image) error
	if r.Previews {
		preview = sendLocked
	}
	gen, up := s.stages(r.Pipeline)
	genErr := gen.Generate(ctx, seeds, r.Generator, r.Label, func(g Generated) error {
		if n < 0 {
			if n, err = passes(r, g.Image.W); err != nil {
				return err
			}
		}
		release, err := ticket.Acquire(ctx)
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer release()
			img, err := chain(ctx, up, r, g, n, preview)
			if err != nil {
				fail(err)
				return
			}
			if err := sendLocked(img); err != nil && ctx.Err() == nil {
				fail(err)
			}
		})
		return nil
	})
	wg.Wait()
	if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
		return err // the first failure, not the cancellations that followed
	}
	return genErr
}

// chain upscales one generated image n times with up and encodes it. The
// provenance lists the generator (from g) and every pass's model in order.
// With preview non-nil, each pass's input (the generator's image, then every
// pass's output but the last) is encoded and given to preview while the pass
// runs.
func chain(ctx context.Context, up Upscaler, r Request, g Generated, n int, preview func(Image) error) (Image, error) {
	prov := g.Prov
	prov.Pipeline = r.Pipeline
	prov.Timings = append([]Timing(nil), g.Prov.Timings...)
	img := g.Image
	for pass := range n {
		var (
			out *imageio.RGB
			p   Provenance
			err error
		)
		if preview == nil {
			out, p, err = up.Upscale(ctx, img, r.Upscaler)
		} else {
			out, p, err = upscaleWhilePreviewing(ctx, up, r, g, img, prov, pass, preview)
		}
		if err != nil {
			return Image{}, fmt.Errorf("image %d: %s ×2 of %d×%d: %w", g.Index, stageName(r.Pipeline), img.W, img.H, err)
		}
		if out.W != 2*img.W || out.H != 2*img.H {
			return Image{}, fmt.Errorf("image %d: upscaler returned %d×%d for %d×%d", g.Index, out.W, out.H, img.W, img.H)
		}
		img = out
		prov.Upscalers = append(prov.Upscalers, p.Upscalers...)
		prov.Timings = append(prov.Timings, p.Timings...)
	}
	start := time.Now()
	png, err := EncodePNG(img, prov)
	if err != nil {
		return Image{}, fmt.Errorf("image %d: %w", g.Index, err)
	}
	prov.Timings = append(prov.Timings, Timing{Stage: "encode", Duration: time.Since(start)})
	return Image{Index: g.Index, Seed: prov.Seed, RGB: img, PNG: png, Prov: prov}, nil
}

// upscaleWhilePreviewing runs pass (0-based) over img with up and, while it
// runs, encodes img as a preview and hands it to preview. It returns once
// both are done; a failed preview cancels the pass. prov is the provenance so
// far, written into the preview's tEXt.
func upscaleWhilePreviewing(ctx context.Context, up Upscaler, r Request, g Generated, img *imageio.RGB, prov Provenance, pass int, preview func(Image) error) (*imageio.RGB, Provenance, error) {
	type result struct {
		out *imageio.RGB
		p   Provenance
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan result, 1)
	go func() { // owned here: every return below first receives from done
		out, p, err := up.Upscale(ctx, img, r.Upscaler)
		done <- result{out, p, err}
	}()
	pv := Image{Index: g.Index, Seed: prov.Seed, RGB: img, Prov: prov, Stage: FromGenerator}
	if pass > 0 {
		pv.Stage, pv.Pass = FromUpscale, pass
	}
	// The preview's provenance must not share the chain's slices, which the
	// passes after it append to.
	pv.Prov.Upscalers = append([]ModelRef(nil), prov.Upscalers...)
	pv.Prov.Timings = nil
	png, err := EncodePNG(img, pv.Prov)
	if err == nil {
		pv.PNG = png
		err = preview(pv)
	}
	if err != nil {
		cancel()
		<-done
		return nil, Provenance{}, fmt.Errorf("image %d: preview at %d px: %w", g.Index, img.W, err)
	}
	res := <-done
	return res.out, res.p, res.err
}

// stageName names a pipeline's ×2 stage in errors.
func stageName(k Kind) string {
	if k == MultiStage {
		return "Up Sampler"
	}
	return "upscale"
}

// Text returns the PNG tEXt chunks that carry p.
func Text(p Provenance) []imageio.Text {
	t := []imageio.Text{{Key: "Software", Value: "hirez"}}
	if p.Generator != (ModelRef{}) {
		t = append(t, imageio.Text{Key: "hirez:pipeline", Value: p.Pipeline.String()})
		seed := strconv.FormatInt(p.Seed, 10)
		if p.FromLatent {
			seed = "latent"
		}
		t = append(t,
			imageio.Text{Key: "hirez:seed", Value: seed},
			imageio.Text{Key: "hirez:latent_dim", Value: strconv.Itoa(p.LatentDim)},
			imageio.Text{Key: "hirez:generator", Value: p.Generator.String()})
		if p.Label != "" {
			t = append(t, imageio.Text{Key: "hirez:label", Value: p.Label})
		}
	}
	if len(p.Upscalers) > 0 {
		ups := make([]string, len(p.Upscalers))
		for i, u := range p.Upscalers {
			ups[i] = u.String()
		}
		t = append(t, imageio.Text{Key: "hirez:upscalers", Value: strings.Join(ups, ",")})
	}
	return t
}

// edgePNG is the encoder for every image the gateway returns. PNG encoding is
// most of the gateway's own CPU; BestSpeed is about 4× faster than the default
// level for about 5 % more bytes at 256² (docs/serving.md), and lossless either way.
// Its buffers are pooled: a fresh zlib writer per image (about 1.2 MiB) cost
// more than encoding a 32² or 64² preview.
var edgePNG = imageio.PNGEncoder{Compression: png.BestSpeed, BufferPool: &imageio.PNGBufferPool{}}

// EncodePNG encodes img with p in tEXt chunks.
func EncodePNG(img *imageio.RGB, p Provenance) ([]byte, error) {
	var buf bytes.Buffer
	if err := edgePNG.Encode(&buf, img, Text(p)...); err != nil {
		return nil, fmt.Errorf("encode png: %w", err)
	}
	return buf.Bytes(), nil
}

// Upscale decodes a caller's PNG, JPEG or WebP (its header checked against
// the limits before any pixel is decoded, so a decompression bomb costs
// nothing), upscales it by scale in ×2 passes and encodes the result.
func (s *Service) Upscale(ctx context.Context, data []byte, scale int, model ModelRef) (Image, error) {
	if scale == 0 {
		scale = 2
	}
	okScale := false
	for _, sc := range s.lim.Scales {
		okScale = okScale || sc == scale
	}
	if !okScale {
		return Image{}, fault.Invalid("scale must be one of %v (0 means 2), got %d", s.lim.Scales, scale)
	}
	if len(data) == 0 {
		return Image{}, fault.Invalid("image is empty; send a PNG, JPEG or WebP file")
	}
	if len(data) > s.lim.MaxEncodedBytes {
		return Image{}, fault.Invalid("image is %d bytes; at most %d are accepted", len(data), s.lim.MaxEncodedBytes)
	}
	side := min(s.lim.MaxInputSide, s.lim.MaxOutputSide/scale)
	img, err := imageio.Decode(data, imageio.Limits{MaxSide: side, MaxPixels: side * side})
	switch {
	case errors.Is(err, imageio.ErrTooLarge):
		return Image{}, fault.Invalid("image too large for ×%d: width and height must be at most %d (%v)", scale, side, err)
	case err != nil:
		return Image{}, fault.Invalid("image is not a decodable PNG, JPEG or WebP: %v", err)
	}
	var prov Provenance // upscaling only: no generator, no pipeline
	for s2 := 1; s2 < scale; s2 *= 2 {
		out, p, err := s.up.Upscale(ctx, img, model)
		if err != nil {
			return Image{}, err
		}
		img = out
		prov.Upscalers = append(prov.Upscalers, p.Upscalers...)
		prov.Timings = append(prov.Timings, p.Timings...)
	}
	png, err := EncodePNG(img, prov)
	if err != nil {
		return Image{}, err
	}
	return Image{RGB: img, PNG: png, Prov: prov}, nil
}
