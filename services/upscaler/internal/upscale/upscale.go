package upscale

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/tile"
	"github.com/hirez-ml/hirez/platform/batch"
	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/platform/hotswap"
	"github.com/hirez-ml/hirez/proto/hirez/limits"
)

// Limits of one request; the transport passes the API's constants.
type Limits struct {
	MaxImages           int // images per call
	MaxInputSide        int // width and height of an input
	MaxOutputSide       int // width·scale and height·scale
	MaxCallOutputPixels int // Σ output pixels of one call
}

// Memory bounds what the service holds at once, whatever the load.
type Memory struct {
	// TileSide: an image with a side over it is upscaled in overlapping
	// tiles of about this side (engine/tile), so the network's activations
	// follow the tile, not the image; 0 upscales whole images.
	TileSide int
	// MaxInFlightBytes bounds the Cost of every image being served at once;
	// requests over it wait (at most until their deadline) for room.
	MaxInFlightBytes int64
}

// Validate reports bounds no service can run with.
func (m Memory) Validate() error {
	var errs []error
	if err := tile.CheckSide(m.TileSide); err != nil {
		errs = append(errs, err)
	}
	if m.MaxInFlightBytes < 1 {
		errs = append(errs, fmt.Errorf("max in-flight bytes must be positive, got %d", m.MaxInFlightBytes))
	}
	return errors.Join(errs...)
}

// DefaultMemory is the flags' defaults. 64 MiB of images in flight, up to
// twice that as Go heap at the default GOGC, leaves the network's
// tile-bounded activations and the runtime room under the documented 400 MB
// per serving process, and still admits 13 of the largest images (512² ×2)
// or 68 of 256² at once: far more than two cores keep busy
// (docs/performance.md has the measurements).
var DefaultMemory = Memory{TileSide: tile.DefaultSide, MaxInFlightBytes: 64 << 20}

// RegisterMemoryFlags defines --tile and --max-inflight-bytes on fs and
// returns the Memory they write into once fs is parsed.
func RegisterMemoryFlags(fs *flag.FlagSet) *Memory {
	m := DefaultMemory
	fs.IntVar(&m.TileSide, "tile", m.TileSide, "upscale images with a side over this many pixels in overlapping tiles (bounded memory, same output); 0: whole images")
	fs.Int64Var(&m.MaxInFlightBytes, "max-inflight-bytes", m.MaxInFlightBytes, "image bytes (inputs, outputs, tiles) of the requests being served; more wait for room until their deadline")
	return &m
}

// ModelRef picks a model: empty Name means the served model; empty Version or
// "production" means the current version; a digest must match it.
type ModelRef struct {
	Name, Version string
}

// Request asks for every image to be upscaled by Scale.
type Request struct {
	Images []*imageio.RGB
	Scale  int
	Model  ModelRef
}

// ModelInfo identifies the version that made an image.
type ModelInfo struct {
	Name, Preset, Version, Backend string
	Scale                          int
}

// Pass is one ×Scale pass of one image: the wall time of the batch it ran
// in, the time it queued before, and the batch size. A pass cut in tiles
// sums its tiles' times and reports the largest batch a tile ran in.
type Pass struct {
	Compute, Queue time.Duration
	BatchSize      int
}

// add counts one tile's batch into the pass.
func (p *Pass) add(t Pass) {
	p.Compute += t.Compute
	p.Queue += t.Queue
	p.BatchSize = max(p.BatchSize, t.BatchSize)
}

// Result is one upscaled image and how it was made.
type Result struct {
	Image  *imageio.RGB
	Model  ModelInfo
	Passes []Pass
}

// Service upscales images; build it with New.
type Service struct {
	holder  *hotswap.Holder[*Model]
	batcher *batch.Batcher[job, output]
	lim     Limits
	mem     Memory
	budget  *budget
}

type job struct {
	m        *Model
	key      string
	img      *imageio.RGB
	enqueued time.Time
}

type output struct {
	img  *imageio.RGB
	pass Pass
}

// New returns a service upscaling with the holder's current model. obs may be nil.
func New(holder *hotswap.Holder[*Model], cfg batch.Config, lim Limits, mem Memory, obs batch.Observer) (*Service, error) {
	if lim.MaxImages < 1 || lim.MaxInputSide < 1 || lim.MaxOutputSide < 1 || lim.MaxCallOutputPixels < 1 {
		return nil, fmt.Errorf("upscale: limits %+v must be positive", lim)
	}
	if err := mem.Validate(); err != nil {
		return nil, fmt.Errorf("upscale: %w", err)
	}
	s := &Service{holder: holder, lim: lim, mem: mem, budget: newBudget(mem.MaxInFlightBytes)}
	// Only images of one size (and one model version) can share a batch, and
	// on a CPU only as many as batchLimit allows.
	opts := []batch.Option[job]{batch.WithKey(func(j job) string { return j.key }), batch.WithBatchLimit(batchLimit)}
	if obs != nil {
		opts = append(opts, batch.WithObserver[job](obs))
	}
	b, err := batch.New(cfg, s.run, opts...)
	if err != nil {
		return nil, fmt.Errorf("upscale: %w", err)
	}
	s.batcher = b
	return s, nil
}

// MaxBatchPixels bounds the input pixels of one batch on a CPU backend: 8
// images of 32², 2 of 64², 1 of 128² and larger. Measured with the engine
// (docs/serving.md, "Batching on a CPU"): at 32² a batch of 8 costs less per
// image than one image alone (per-call overhead is amortised), from 64² on a
// batch costs as much per image as single images or more (its activations
// leave the cache), while every image of a batch waits for all of it. Backends
// with device memory (a GPU) keep the full --max-batch: there a batch of one
// leaves the device idle.
const MaxBatchPixels = 8 * 32 * 32

// batchLimit is how many images of j's size may share a batch.
func batchLimit(j job) int {
	if j.m.Capabilities().DeviceMemory {
		return math.MaxInt
	}
	return MaxBatchPixels / max(1, j.img.W*j.img.H)
}

// Close stops the batcher, draining queued work until ctx ends.
func (s *Service) Close(ctx context.Context) error { return s.batcher.Close(ctx) }

// Limits returns the service's limits.
func (s *Service) Limits() Limits { return s.lim }

func (s *Service) run(ctx context.Context, jobs []job) ([]output, error) {
	start := time.Now()
	in := make([]*imageio.RGB, len(jobs))
	for i, j := range jobs {
		in[i] = j.img
	}
	imgs, err := jobs[0].m.upscale(ctx, in)
	if err != nil {
		return nil, err
	}
	took := time.Since(start)
	out := make([]output, len(jobs))
	for i, j := range jobs {
		out[i] = output{img: imgs[i], pass: Pass{Compute: took, Queue: start.Sub(j.enqueued), BatchSize: len(jobs)}}
	}
	return out, nil
}

// CheckHeader validates an image from its declared size alone, before any
// pixel is touched: sides, the output size at scale, and that the pixel data
// has exactly width·height·channels bytes. field names the image in messages.
func (l Limits) CheckHeader(field string, w, h, channels, nbytes, scale int) error {
	switch {
	case channels != 3:
		return fault.Invalid("%s.channels must be 3 (RGB), got %d", field, channels)
	case w < 1 || h < 1 || w > l.MaxInputSide || h > l.MaxInputSide:
		return fault.Invalid("%s is %d×%d; width and height must be between 1 and %d", field, w, h, l.MaxInputSide)
	case w*scale > l.MaxOutputSide || h*scale > l.MaxOutputSide:
		return fault.Invalid("%s is %d×%d; ×%d gives %d×%d, over the largest output side %d", field, w, h, scale, w*scale, h*scale, l.MaxOutputSide)
	case nbytes != w*h*3:
		return fault.Invalid("%s has %d bytes of pixels; a %d×%d RGB image has %d", field, nbytes, w, h, w*h*3)
	}
	return nil
}

// CheckScale returns the number of passes scale needs with a model that
// multiplies by modelScale.
func CheckScale(scale, modelScale int) (int, error) {
	passes, s := 0, 1
	for s < scale {
		s *= modelScale
		passes++
	}
	if s != scale || passes == 0 {
		return 0, fault.Invalid("scale %d cannot be made from ×%d passes of the served model", scale, modelScale)
	}
	return passes, nil
}

// Validate checks a request's count, scale and every image's header.
func (s *Service) Validate(r Request) error {
	if len(r.Images) < 1 || len(r.Images) > s.lim.MaxImages {
		return fault.Invalid("the number of images must be between 1 and %d, got %d", s.lim.MaxImages, len(r.Images))
	}
	if r.Scale != 2 && r.Scale != 4 {
		return fault.Invalid("scale must be 2 or 4, got %d", r.Scale)
	}
	total := 0
	for i, img := range r.Images {
		if img == nil {
			return fault.Invalid("images[%d] is missing", i)
		}
		if err := s.lim.CheckHeader(fmt.Sprintf("images[%d]", i), img.W, img.H, 3, len(img.Pix), r.Scale); err != nil {
			return err
		}
		total += img.W * img.H * r.Scale * r.Scale
	}
	if total > s.lim.MaxCallOutputPixels {
		return fault.Invalid("the call would return %d pixels; at most %d fit in one response, so split it", total, s.lim.MaxCallOutputPixels)
	}
	return nil
}

// Acquire pins the model version ref names; Release the result when done.
func (s *Service) Acquire(ref ModelRef) (*hotswap.Ref[*Model], error) {
	v, err := s.holder.Acquire()
	if err != nil {
		return nil, err
	}
	m := v.Value
	if ref.Name != "" && ref.Name != m.Name {
		v.Release()
		return nil, fault.NotFound("model %q is not served here; this upscaler serves %q", ref.Name, m.Name)
	}
	if !limits.IsProduction(ref.Version) && ref.Version != v.Digest {
		v.Release()
		return nil, fault.NotFound("version %q of model %q is not served here; the current version is %s", ref.Version, m.Name, v.Digest)
	}
	return v, nil
}

// Info describes a held version.
func Info(v *hotswap.Version[*Model]) ModelInfo {
	m := v.Value
	return ModelInfo{Name: m.Name, Preset: m.Preset, Version: v.Digest, Backend: m.Backend(), Scale: m.Scale}
}

// Upscale validates r, waits for room in the in-flight budget (Admit) and
// upscales every image with one model version.
func (s *Service) Upscale(ctx context.Context, r Request) ([]Result, error) {
	if err := s.Validate(r); err != nil {
		return nil, err
	}
	ref, err := s.Acquire(r.Model)
	if err != nil {
		return nil, err
	}
	defer ref.Release()
	release, err := s.Admit(ctx, ref.Version, r.Images, r.Scale)
	if err != nil {
		return nil, err
	}
	defer release()
	return s.UpscaleWith(ctx, ref.Version, r.Images, r.Scale)
}

// Cost is the bytes an image holds while it is served at scale with m: the
// input, the output of every pass (a ×4 keeps the ×2 until the ×4 is made),
// and, for a pass that is cut in tiles, one tile's input and output. It is
// known from the image's declared size alone, before any pixel is touched.
// What does not grow with the requests is left out: the network's
// activations (one batch at a time per model, bounded by the tile side) and
// the gRPC buffers of a message not yet admitted.
func (s *Service) Cost(m *Model, w, h, scale int) (int64, error) {
	passes, err := CheckScale(scale, m.Scale)
	if err != nil {
		return 0, err
	}
	tiler, err := s.tiler(m)
	if err != nil {
		return 0, err
	}
	n := rgbBytes(w, h)
	for range passes {
		if tw, th, cut := tiler.MaxTile(w, h); cut {
			n += rgbBytes(tw, th) + rgbBytes(m.Scale*tw, m.Scale*th)
		}
		w, h = m.Scale*w, m.Scale*h
		n += rgbBytes(w, h)
	}
	return n, nil
}

func rgbBytes(w, h int) int64 { return 3 * int64(w) * int64(h) }

// Admit waits until the Cost of imgs fits in the in-flight budget
// (Memory.MaxInFlightBytes), first come first served, and returns the
// function that gives it back once the images are delivered. When ctx ends
// first it returns ctx.Err(); a request larger than the whole budget fails at
// once with a fault.KindOverloaded error, since waiting would never help.
func (s *Service) Admit(ctx context.Context, v *hotswap.Version[*Model], imgs []*imageio.RGB, scale int) (release func(), err error) {
	var n int64
	for _, img := range imgs {
		c, err := s.Cost(v.Value, img.W, img.H, scale)
		if err != nil {
			return nil, err
		}
		n += c
	}
	if err := s.budget.acquire(ctx, n); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { s.budget.release(n) }) }, nil
}

// InFlight reports the in-flight budget: bytes admitted, their peak, waiters.
func (s *Service) InFlight() InFlight { return s.budget.stats() }

// tiler cuts images for m at the configured tile side.
func (s *Service) tiler(m *Model) (tile.Tiler, error) {
	t, err := tile.New(m.Config(), s.mem.TileSide)
	if err != nil {
		return tile.Tiler{}, fmt.Errorf("model %s: %w", m.Name, err)
	}
	return t, nil
}

// UpscaleWith upscales already validated images with a version the caller
// holds, each image in its own goroutine so that equal sizes batch together.
func (s *Service) UpscaleWith(ctx context.Context, v *hotswap.Version[*Model], imgs []*imageio.RGB, scale int) ([]Result, error) {
	info := Info(v)
	passes, err := CheckScale(scale, v.Value.Scale)
	if err != nil {
		return nil, err
	}
	// A model that pools (the Up Sampler: sides divisible by 4) cannot take
	// every side; say so before queueing, rather than fail inside the engine.
	for i, img := range imgs {
		w, h := img.W, img.H
		for range passes {
			if err := v.Value.CheckSize(w, h); err != nil {
				return nil, fault.Invalid("images[%d]: %v", i, err)
			}
			w, h = w*v.Value.Scale, h*v.Value.Scale
		}
	}
	tiler, err := s.tiler(v.Value)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx) // one failure stops the others' queued passes
	defer cancel()
	out := make([]Result, len(imgs))
	errs := make([]error, len(imgs))
	var wg sync.WaitGroup
	for i, img := range imgs {
		wg.Go(func() {
			res := Result{Image: img, Model: info}
			for range passes {
				var pass Pass
				// The tiles of one pass go to the batcher one after another
				// (one tile's buffers per image at a time); tiles of equal
				// size from other images and streams batch together.
				up, err := tiler.Upscale(ctx, res.Image, func(ctx context.Context, in *imageio.RGB) (*imageio.RGB, error) {
					j := job{m: v.Value, key: fmt.Sprintf("%s/%dx%d", v.Digest, in.W, in.H), img: in, enqueued: time.Now()}
					o, err := s.batcher.Submit(ctx, j)
					if err != nil {
						return nil, err
					}
					pass.add(o.pass)
					return o.img, nil
				})
				if err != nil {
					errs[i] = fmt.Errorf("images[%d]: %w", i, err)
					cancel()
					return
				}
				res.Image = up
				res.Passes = append(res.Passes, pass)
			}
			out[i] = res
		})
	}
	wg.Wait()
	var first error
	for _, err := range errs {
		// Report the cause, not the cancellations it led to.
		if err != nil && (first == nil || errors.Is(first, context.Canceled) && !errors.Is(err, context.Canceled)) {
			first = err
		}
	}
	if first != nil {
		return nil, first
	}
	return out, nil
}
