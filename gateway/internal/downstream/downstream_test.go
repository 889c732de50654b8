package downstream

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/gateway/internal/pipeline"
	"github.com/hirez-ml/hirez/platform/batch/swap"
	"github.com/hirez-ml/hirez/platform/rpcerr"
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
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := lis.Addr().String()
	lis.Close() // nothing listens here now

	// A real server that implements nothing: UNIMPLEMENTED for every call.
	lis, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterUpscalerServiceServer(srv, pb.UnimplementedUpscalerServiceServer{})
	pb.RegisterGeneratorServiceServer(srv, pb.UnimplementedGeneratorServiceServer{})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	defer func() { srv.Stop(); <-done }()
	up := lis.Addr().String()

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
	holder *swap.Holder[int]
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
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	holder := swap.New(func(context.Context, string, []byte) (int, error) { return 0, nil }, nil)
	defer holder.Close()
	srv := grpc.NewServer()
	pb.RegisterUpscalerServiceServer(srv, notLoaded{holder: holder})
	pb.RegisterGeneratorServiceServer(srv, notLoaded{holder: holder})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	defer func() { srv.Stop(); <-done }()
	addr := lis.Addr().String()
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
		if got := rpcerr.Reason(tt.err); got != swap.ReasonNotLoaded {
			t.Errorf("%s: ErrorInfo reason %q, want %q (the replica's details were dropped)", tt.name, got, swap.ReasonNotLoaded)
		}
	}
}
