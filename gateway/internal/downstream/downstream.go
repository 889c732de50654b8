// Package downstream implements the pipeline's Generator and Upscaler over
// gRPC: it converts between hirez.v1 messages and the pipeline's types,
// retries UNAVAILABLE and RESOURCE_EXHAUSTED (a replica that did no work)
// with bounded backoff, bounds each upscale hop by a timeout derived from
// measured hop times and retries a hop that ran past it on another replica
// (hop.go), and relays a replica's own statuses (those with a hirez
// ErrorInfo) unchanged (STYLE rule 6). Statuses the gRPC client made itself
// (a refused dial naming an internal address, say) reach the caller as a
// public message of the same code; the original stays in the log
// (rpcerr.Public).
//
// Retries are a bounded loop here rather than a service-config retryPolicy:
// the loop sees whether a stream already delivered images (a stream is only
// retried before its first message, so no image is sent twice) and it logs
// nothing itself. Round-robin with client-side health checking (platform's
// client.Dial) means a retry goes to another ready replica.
package downstream

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/gateway/internal/pipeline"
	"github.com/hirez-ml/hirez/platform/client"
	"github.com/hirez-ml/hirez/platform/rpcerr"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// Retry bounds the retries of calls that failed with UNAVAILABLE.
type Retry struct {
	Attempts int           // total tries, ≥ 1
	Backoff  time.Duration // wait before the second try; doubles, with jitter
	Max      time.Duration // longest wait
}

// DefaultRetry tries 6 times over 1.25–2.5 s. The window is longer than
// gRPC's first reconnect backoff (1 s ± 20 %), so a replica that refused the
// gateway's first dial (started a moment later, or restarting) is reconnected
// before the retries run out.
var DefaultRetry = Retry{Attempts: 6, Backoff: 100 * time.Millisecond, Max: time.Second}

// do runs call until it succeeds, fails with a code other than UNAVAILABLE
// or RESOURCE_EXHAUSTED (or a hop timeout), retry says stop, or ctx ends.
// RESOURCE_EXHAUSTED is retried because the gateway admitted the request:
// a replica whose queue is full refused at once, without work, and another
// replica or a moment later takes the call rather than the request failing
// after images were sent. A hop timeout is retried at once: the next try
// goes to another replica.
func (r Retry) do(ctx context.Context, call func() (retryable bool, err error)) error {
	wait := r.Backoff
	for attempt := 1; ; attempt++ {
		retryable, err := call()
		if err == nil || !retryable || attempt >= r.Attempts {
			return err
		}
		if errors.As(err, new(*hopTimeout)) {
			continue
		}
		if c := status.Code(err); c != codes.Unavailable && c != codes.ResourceExhausted {
			return err
		}
		// Equal jitter: replicas that failed together do not retry together,
		// and the window keeps a lower bound (see DefaultRetry).
		d := wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, r.Max)
	}
}

// Generator calls a GeneratorService.
type Generator struct {
	client pb.GeneratorServiceClient
	retry  Retry
	pool   string // see InPool
}

var _ pipeline.Generator = (*Generator)(nil)

// NewGenerator returns a pipeline.Generator over conn.
func NewGenerator(conn grpc.ClientConnInterface, retry Retry) *Generator {
	return &Generator{client: pb.NewGeneratorServiceClient(conn), retry: retry}
}

// Generate implements pipeline.Generator with a StreamGenerate call. A
// stream that fails part-way (a replica restarting, its queue full) is
// resumed with the seeds not yet received: an image depends only on its seed,
// label and model, so the caller gets each index once and never a failure in
// the middle of its own stream for a fault another replica can absorb.
func (g *Generator) Generate(ctx context.Context, seeds []int64, model pipeline.ModelRef, label string, yield func(pipeline.Generated) error) error {
	pending := make([]int, len(seeds)) // indices into seeds not yet received
	for i := range pending {
		pending[i] = i
	}
	var yieldErr error
	err := g.retry.do(ctx, func() (bool, error) {
		req := &pb.StreamGenerateRequest{Seeds: make([]int64, len(pending)), Model: ToModelRef(model), Label: label}
		for k, i := range pending {
			req.Seeds[k] = seeds[i]
		}
		stream, err := g.client.StreamGenerate(ctx, req)
		if err != nil {
			return true, err
		}
		got := make([]bool, len(pending))
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			if err != nil {
				var rest []int
				for k, i := range pending {
					if !got[k] {
						rest = append(rest, i)
					}
				}
				pending = rest
				if len(pending) == 0 {
					return false, nil // every image arrived: the caller has what it asked for
				}
				return true, err
			}
			img := msg.GetImage()
			k := int(img.GetIndex())
			if k < 0 || k >= len(got) || got[k] {
				return false, status.Errorf(codes.Internal, "generator sent image index %d of a %d-seed stream twice or out of range", k, len(got))
			}
			got[k] = true
			rgb, err := FromRaw(img.GetImage())
			if err != nil {
				return false, err
			}
			if err := yield(pipeline.Generated{Index: pending[k], Image: rgb, Prov: FromProvenance(img.GetProvenance())}); err != nil {
				yieldErr = err
				return false, err
			}
		}
	})
	if yieldErr != nil {
		return yieldErr // the gateway's own error, not a downstream one
	}
	return public("generator", g.pool, err)
}

// Labels implements pipeline.Generator with one ListLabels call (retried on
// UNAVAILABLE like any other).
func (g *Generator) Labels(ctx context.Context, model pipeline.ModelRef) (pipeline.Labels, error) {
	req := &pb.ListLabelsRequest{Model: ToModelRef(model)}
	var resp *pb.ListLabelsResponse
	err := g.retry.do(ctx, func() (bool, error) {
		var err error
		resp, err = g.client.ListLabels(ctx, req)
		return true, err
	})
	if err != nil {
		return pipeline.Labels{}, public("generator", g.pool, err)
	}
	m := resp.GetModel()
	return pipeline.Labels{Generator: pipeline.ModelRef{Name: m.GetName(), Version: m.GetVersion()}, Labels: resp.GetLabels()}, nil
}

// InPool returns a copy of g whose UNAVAILABLE statuses (after the retries)
// name its pool (e.g. the flag that configured it), so that a caller of an
// optional pipeline learns which pool failed rather than just "connection
// refused". The rest of the status is the downstream's: code, message (after
// the pool's name) and details, such as the ErrorInfo reason MODEL_NOT_LOADED
// of a replica that answered but has no model yet.
func (g *Generator) InPool(pool string) *Generator {
	c := *g
	c.pool = pool
	return &c
}

// Upscaler calls an UpscalerService, one image and one ×2 pass per call so
// that round-robin spreads the images of a request over the replicas.
type Upscaler struct {
	client pb.UpscalerServiceClient
	retry  Retry
	pool   string // see InPool
	hops   Hops
	times  *hopTimes // shared by the copies InPool and WithHops make: one pool
}

var _ pipeline.Upscaler = (*Upscaler)(nil)

// NewUpscaler returns a pipeline.Upscaler over conn, with DefaultHops.
func NewUpscaler(conn grpc.ClientConnInterface, retry Retry) *Upscaler {
	return &Upscaler{client: pb.NewUpscalerServiceClient(conn), retry: retry, hops: DefaultHops, times: newHopTimes()}
}

// WithHops returns a copy of u whose hops are bounded by h.
func (u *Upscaler) WithHops(h Hops) *Upscaler {
	c := *u
	c.hops = h
	return &c
}

// Upscale implements pipeline.Upscaler. Each try is bounded by the hop
// timeout for the image's side; a try that runs past it (the caller's ctx
// still alive) ejects the replica it went to and is tried again at once on
// another, up to Hops.Tries times.
func (u *Upscaler) Upscale(ctx context.Context, img *imageio.RGB, model pipeline.ModelRef) (*imageio.RGB, pipeline.Provenance, error) {
	req := &pb.UpscaleRequest{Images: []*pb.RawImage{ToRaw(img)}, Scale: 2, Model: ToModelRef(model)}
	side := max(img.W, img.H)
	var (
		resp     *pb.UpscaleResponse
		avoid    string
		timeouts int
	)
	err := u.retry.do(ctx, func() (bool, error) {
		limit := u.hops.timeout(u.times, side)
		a := &client.Attempt{Avoid: avoid}
		hctx, cancel := context.WithTimeout(client.WithAttempt(ctx, a), limit)
		defer cancel()
		start := time.Now()
		var err error
		resp, err = u.client.Upscale(hctx, req)
		avoid = a.Addr() // the next try goes elsewhere, whatever went wrong
		switch {
		case err == nil:
			u.times.observe(side, time.Since(start))
			a.Answered()
		// The hop's deadline, not the caller's: either ours fired, or the
		// replica (which got it as grpc-timeout) gave up a moment earlier.
		case ctx.Err() == nil && (hctx.Err() != nil || status.Code(err) == codes.DeadlineExceeded):
			a.Eject()
			timeouts++
			return timeouts < u.hops.Tries, &hopTimeout{limit: limit, tries: timeouts, err: err}
		}
		return true, err
	})
	if err != nil {
		return nil, pipeline.Provenance{}, public("upscaler", u.pool, err)
	}
	if len(resp.GetImages()) != 1 {
		return nil, pipeline.Provenance{}, status.Errorf(codes.Internal, "upscaler returned %d images for 1", len(resp.GetImages()))
	}
	out, err := FromRaw(resp.GetImages()[0])
	if err != nil {
		return nil, pipeline.Provenance{}, err
	}
	return out, FromProvenance(resp.GetProvenance()), nil
}

// InPool returns a copy of u whose UNAVAILABLE statuses name its pool (see
// Generator.InPool).
func (u *Upscaler) InPool(pool string) *Upscaler {
	c := *u
	c.pool = pool
	return &c
}

// public is what the gateway's caller sees of a downstream error, after the
// retries gave up. A replica's own status (it carries a hirez ErrorInfo: bad
// input, unknown model, no model loaded) passes through with its message and
// details; any other status — made by the gRPC client (a refused dial, a
// reset connection, naming internal addresses), by a hop timeout, or by a
// replica's bug — keeps its code and gets a public message naming only the
// stage, the full error kept for the log (rpcerr.Public). An UNAVAILABLE
// status is prefixed with the pool it came from, if named (see InPool).
// Errors that are not statuses (the caller's ctx) pass through.
func public(stage, pool string, err error) error {
	s, ok := status.FromError(err)
	if !ok || err == nil {
		return err
	}
	replicas := rpcerr.Reason(err) != ""
	named := pool != "" && s.Code() == codes.Unavailable
	switch {
	case replicas && !named:
		return err // unchanged: STYLE rule 6
	case !replicas:
		s = status.New(s.Code(), publicMessage(stage, s.Code()))
	}
	if named {
		p := s.Proto() // a copy, details and all
		p.Message = pool + ": " + p.GetMessage()
		s = status.FromProto(p)
	}
	return rpcerr.Public(s, err)
}

// publicMessage says what went wrong with a stage without saying where.
func publicMessage(stage string, c codes.Code) string {
	switch c {
	case codes.Unavailable:
		return "no " + stage + " replica could take the call; retry later"
	case codes.ResourceExhausted:
		return "every " + stage + " replica is busy; retry later"
	case codes.DeadlineExceeded:
		return "the " + stage + " did not answer in time"
	case codes.Canceled:
		return "the " + stage + " call was cancelled"
	}
	return "the " + stage + " call failed (" + c.String() + ")"
}

// FromRaw checks a downstream image and wraps its pixels.
func FromRaw(raw *pb.RawImage) (*imageio.RGB, error) {
	img := &imageio.RGB{W: int(raw.GetWidth()), H: int(raw.GetHeight()), Pix: raw.GetRgb()}
	if raw.GetChannels() != pb.RawImageChannels {
		return nil, status.Errorf(codes.Internal, "downstream image has %d channels", raw.GetChannels())
	}
	if err := img.Validate(); err != nil {
		return nil, status.Errorf(codes.Internal, "downstream image: %v", err)
	}
	return img, nil
}

// ToRaw converts an image to the wire form (no copy).
func ToRaw(img *imageio.RGB) *pb.RawImage {
	return &pb.RawImage{Rgb: img.Pix, Width: int32(img.W), Height: int32(img.H), Channels: pb.RawImageChannels}
}

// ToModelRef converts a model reference; the zero ref becomes nil.
func ToModelRef(m pipeline.ModelRef) *pb.ModelRef {
	if m == (pipeline.ModelRef{}) {
		return nil
	}
	return &pb.ModelRef{Name: m.Name, Version: m.Version}
}

// FromProvenance converts downstream provenance.
func FromProvenance(p *pb.Provenance) pipeline.Provenance {
	out := pipeline.Provenance{
		Seed:       p.GetSeed(),
		FromLatent: p.GetFromLatent(),
		LatentDim:  int(p.GetLatentDim()),
		Pipeline:   pipeline.Kind(p.GetPipeline()),
		Label:      p.GetLabel(),
	}
	if g := p.GetGenerator(); g != nil {
		out.Generator = pipeline.ModelRef{Name: g.GetName(), Version: g.GetVersion()}
	}
	for _, u := range p.GetUpscalers() {
		out.Upscalers = append(out.Upscalers, pipeline.ModelRef{Name: u.GetName(), Version: u.GetVersion()})
	}
	for _, t := range p.GetTimings() {
		out.Timings = append(out.Timings, pipeline.Timing{Stage: t.GetStage(), Duration: t.GetDuration().AsDuration(), BatchSize: int(t.GetBatchSize()), Backend: t.GetBackend()})
	}
	return out
}
