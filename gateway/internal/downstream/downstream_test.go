package downstream

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/gateway/internal/pipeline"
	"github.com/hirez-ml/hirez/platform/hotswap"
	"github.com/hirez-ml/hirez/platform/rpcerr"
	"github.com/hirez-ml/hirez/platform/servertest"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestInPoolNamesTheDownPool: with no replica listening, an optional pool's
// UNAVAILABLE names the pool; the default pools' and every other status pass
// through unchanged.
func TestInPoolNamesTheDownPool(t *testing.T) {
	down := servertest.FreeAddr(t) // nothing listens here

	// A real server that implements nothing: UNIMPLEMENTED for every call.
	up := servertest.ServeBare(t, func(srv *grpc.Server) {
		pb.RegisterUpscalerServiceServer(srv, pb.UnimplementedUpscalerServiceServer{})
		pb.RegisterGeneratorServiceServer(srv, pb.UnimplementedGeneratorServiceServer{})
	}).Addr

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	once := Retry{Attempts: 2, Backoff: time.Millisecond, Max: time.Millisecond}
	img := imageio.NewRGB(4, 4)
	upscale := func(u *Upscaler) error { _, _, err := u.Upscale(ctx, img, pipeline.ModelRef{}); return err }
	generate := func(g *Generator) error {
		return g.Generate(ctx, []int64{1}, pipeline.ModelRef{}, "", func(pipeline.Generated) error { return nil })
	}
	for _, tt := range []struct {
		name string
		err  error
		code codes.Code
		msg  string // "" : must not name a pool
	}{
		{"optional upscaler down", upscale(NewUpscaler(dial(t, down), once).InPool("the Up Sampler pool (--upsampler-target x)")), codes.Unavailable, "the Up Sampler pool (--upsampler-target x): "},
		{"optional generator down", generate(NewGenerator(dial(t, down), once).InPool("the single-DCGAN pool")), codes.Unavailable, "the single-DCGAN pool: "},
		{"default upscaler down", upscale(NewUpscaler(dial(t, down), once)), codes.Unavailable, ""},
		{"optional upscaler, other status", upscale(NewUpscaler(dial(t, up), once).InPool("the Up Sampler pool")), codes.Unimplemented, ""},
		{"optional generator, other status", generate(NewGenerator(dial(t, up), once).InPool("the single-DCGAN pool")), codes.Unimplemented, ""},
	} {
		msg := status.Convert(tt.err).Message()
		if status.Code(tt.err) != tt.code || (tt.msg != "" && !strings.HasPrefix(msg, tt.msg)) || (tt.msg == "" && strings.Contains(msg, "pool")) {
			t.Errorf("%s: %v; want %v with message starting %q", tt.name, tt.err, tt.code, tt.msg)
		}
	}
}

// notLoaded is a real replica with an empty model holder: every call fails
// the way a generator or upscaler still loading its model fails.
type notLoaded struct {
	pb.UnimplementedGeneratorServiceServer
	pb.UnimplementedUpscalerServiceServer
	holder *hotswap.Holder[int]
}

func (n notLoaded) err() error {
	ref, err := n.holder.Acquire()
	if err == nil {
		ref.Release()
		return status.Error(codes.Internal, "the test's holder has a model")
	}
	return rpcerr.Error(err) // what the platform server's interceptor sends
}

func (n notLoaded) StreamGenerate(*pb.StreamGenerateRequest, pb.GeneratorService_StreamGenerateServer) error {
	return n.err()
}

func (n notLoaded) Upscale(context.Context, *pb.UpscaleRequest) (*pb.UpscaleResponse, error) {
	return nil, n.err()
}

// TestInPoolKeepsTheReplicasStatus: a replica that answers UNAVAILABLE with
// an ErrorInfo (no model loaded yet) reaches the caller of an optional pool
// with the pool named in front of the replica's own message and the reason
// intact, not replaced by a status of the gateway's making.
func TestInPoolKeepsTheReplicasStatus(t *testing.T) {
	holder := hotswap.New(func(context.Context, string, []byte) (int, error) { return 0, nil }, nil)
	defer holder.Close()
	addr := servertest.ServeBare(t, func(srv *grpc.Server) {
		pb.RegisterUpscalerServiceServer(srv, notLoaded{holder: holder})
		pb.RegisterGeneratorServiceServer(srv, notLoaded{holder: holder})
	}).Addr
	_, want := holder.Acquire()
	wantMsg := rpcerr.Status(want).Message()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	once := Retry{Attempts: 2, Backoff: time.Millisecond, Max: time.Millisecond}
	_, _, upErr := NewUpscaler(dial(t, addr), once).InPool("the Up Sampler pool (--upsampler-target x)").
		Upscale(ctx, imageio.NewRGB(4, 4), pipeline.ModelRef{})
	genErr := NewGenerator(dial(t, addr), once).InPool("the single-DCGAN pool (--single-generator-target y)").
		Generate(ctx, []int64{1}, pipeline.ModelRef{}, "", func(pipeline.Generated) error { return nil })
	for _, tt := range []struct {
		name, pool string
		err        error
	}{
		{"upscaler", "the Up Sampler pool (--upsampler-target x)", upErr},
		{"generator", "the single-DCGAN pool (--single-generator-target y)", genErr},
	} {
		if got, msg := status.Code(tt.err), tt.pool+": "+wantMsg; got != codes.Unavailable || status.Convert(tt.err).Message() != msg {
			t.Errorf("%s: %v; want UNAVAILABLE %q", tt.name, tt.err, msg)
		}
		if got := rpcerr.Reason(tt.err); got != hotswap.ReasonNotLoaded {
			t.Errorf("%s: ErrorInfo reason %q, want %q (the replica's details were dropped)", tt.name, got, hotswap.ReasonNotLoaded)
		}
	}
}

// flaky is a generator replica whose first stream sends two images, then
// fails as a replica with a full queue does; later streams serve every seed.
// An image's one pixel is its seed, so the test sees which seed it came from.
type flaky struct {
	pb.UnimplementedGeneratorServiceServer
	calls chan []int64 // the seeds of each call
}

func (f flaky) StreamGenerate(req *pb.StreamGenerateRequest, stream pb.GeneratorService_StreamGenerateServer) error {
	f.calls <- req.GetSeeds()
	for i, s := range req.GetSeeds() {
		if len(f.calls) == 1 && i == 2 {
			return status.Error(codes.ResourceExhausted, "queue full")
		}
		img := imageio.NewRGB(1, 1)
		img.Pix[0] = uint8(s)
		msg := &pb.StreamGenerateResponse{Image: &pb.GeneratedImage{Index: int32(i), Image: ToRaw(img)}}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

// TestGenerateResumesAStreamThatFailed: a stream that fails after some images
// is resumed with the seeds not yet received; the caller gets every index
// once, each from its own seed, and no error.
func TestGenerateResumesAStreamThatFailed(t *testing.T) {
	f := flaky{calls: make(chan []int64, 8)}
	addr := servertest.ServeBare(t, func(srv *grpc.Server) { pb.RegisterGeneratorServiceServer(srv, f) }).Addr

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seeds := []int64{10, 11, 12, 13, 14}
	got := map[int]uint8{}
	err := NewGenerator(dial(t, addr), Retry{Attempts: 3, Backoff: time.Millisecond, Max: time.Millisecond}).
		Generate(ctx, seeds, pipeline.ModelRef{}, "", func(g pipeline.Generated) error {
			if _, twice := got[g.Index]; twice {
				t.Errorf("index %d delivered twice", g.Index)
			}
			got[g.Index] = g.Image.Pix[0]
			return nil
		})
	if err != nil {
		t.Fatalf("Generate: %v, want the failed stream resumed", err)
	}
	for i, s := range seeds {
		if got[i] != uint8(s) {
			t.Errorf("index %d: image of seed %d, want %d", i, got[i], s)
		}
	}
	close(f.calls)
	var calls [][]int64
	for c := range f.calls {
		calls = append(calls, c)
	}
	if len(calls) != 2 || len(calls[1]) != 3 || calls[1][0] != 12 {
		t.Errorf("calls %v, want all seeds, then the three not received", calls)
	}
}

// failsAtTheEnd sends every image, then ends its stream UNAVAILABLE.
type failsAtTheEnd struct {
	pb.UnimplementedGeneratorServiceServer
}

func (failsAtTheEnd) StreamGenerate(req *pb.StreamGenerateRequest, stream pb.GeneratorService_StreamGenerateServer) error {
	for i := range req.GetSeeds() {
		if err := stream.Send(&pb.StreamGenerateResponse{Image: &pb.GeneratedImage{Index: int32(i), Image: ToRaw(imageio.NewRGB(1, 1))}}); err != nil {
			return err
		}
	}
	return status.Error(codes.Unavailable, "shutting down")
}

// TestGenerateAfterEveryImageArrived: a stream that fails once every image
// has arrived is a success, not a retry of nothing.
func TestGenerateAfterEveryImageArrived(t *testing.T) {
	addr := servertest.ServeBare(t, func(srv *grpc.Server) { pb.RegisterGeneratorServiceServer(srv, failsAtTheEnd{}) }).Addr
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	err := NewGenerator(dial(t, addr), Retry{Attempts: 3, Backoff: time.Millisecond, Max: time.Millisecond}).
		Generate(ctx, []int64{1, 2, 3}, pipeline.ModelRef{}, "", func(pipeline.Generated) error { n++; return nil })
	if err != nil || n != 3 {
		t.Errorf("Generate: %v after %d images, want nil after 3", err, n)
	}
}
