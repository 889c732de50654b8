// Package downstream implements the pipeline's Generator and Upscaler over
// gRPC: it converts between hirez.v1 messages and the pipeline's types,
// retries UNAVAILABLE with bounded backoff, and passes every other status
// through unchanged (the gateway relays downstream statuses, STYLE rule 6).
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

// do runs call until it succeeds, fails with a code other than UNAVAILABLE,
// retry says stop, or ctx ends.
func (r Retry) do(ctx context.Context, call func() (retryable bool, err error)) error {
	wait := r.Backoff
	for attempt := 1; ; attempt++ {
		retryable, err := call()
		if err == nil || !retryable || status.Code(err) != codes.Unavailable || attempt >= r.Attempts {
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

// Generate implements pipeline.Generator with one StreamGenerate call.
func (g *Generator) Generate(ctx context.Context, seeds []int64, model pipeline.ModelRef, label string, yield func(pipeline.Generated) error) error {
	req := &pb.StreamGenerateRequest{Seeds: seeds, Model: ToModelRef(model), Label: label}
	var yieldErr error
	err := g.retry.do(ctx, func() (bool, error) {
		stream, err := g.client.StreamGenerate(ctx, req)
		if err != nil {
			return true, err
		}
		received := false
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			if err != nil {
				return !received, err
			}
			received = true
			img := msg.GetImage()
			rgb, err := FromRaw(img.GetImage())
			if err != nil {
				return false, err
			}
			if err := yield(pipeline.Generated{Index: int(img.GetIndex()), Image: rgb, Prov: FromProvenance(img.GetProvenance())}); err != nil {
				yieldErr = err
				return false, err
			}
		}
	})
	if yieldErr != nil {
		return yieldErr // the gateway's own error, not a downstream one
	}
	return unavailable(g.pool, err)
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
		return pipeline.Labels{}, unavailable(g.pool, err)
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
}

var _ pipeline.Upscaler = (*Upscaler)(nil)

// NewUpscaler returns a pipeline.Upscaler over conn.
func NewUpscaler(conn grpc.ClientConnInterface, retry Retry) *Upscaler {
	return &Upscaler{client: pb.NewUpscalerServiceClient(conn), retry: retry}
}

// Upscale implements pipeline.Upscaler.
func (u *Upscaler) Upscale(ctx context.Context, img *imageio.RGB, model pipeline.ModelRef) (*imageio.RGB, pipeline.Provenance, error) {
	req := &pb.UpscaleRequest{Images: []*pb.RawImage{ToRaw(img)}, Scale: 2, Model: ToModelRef(model)}
	var resp *pb.UpscaleResponse
	err := u.retry.do(ctx, func() (bool, error) {
		var err error
		resp, err = u.client.Upscale(ctx, req)
		return true, err
	})
	if err != nil {
		return nil, pipeline.Provenance{}, unavailable(u.pool, err)
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

// unavailable prefixes an UNAVAILABLE status, after the retries gave up, with
// the pool it came from. It keeps the rest of the status: the message may be
// the client's (no replica reachable) or a replica's (say, no model loaded),
// and the details carry the reason clients branch on. Other errors and an
// unnamed pool pass through unchanged.
func unavailable(pool string, err error) error {
	if pool == "" || status.Code(err) != codes.Unavailable {
		return err
	}
	p := status.Convert(err).Proto() // a copy
	p.Message = pool + ": " + p.GetMessage()
	return status.FromProto(p).Err()
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
