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
		return g.Generate(ctx, []int64{1}, pipeline.ModelRef{}, func(pipeline.Generated) error { return nil })
	}
	for _, tt := range []struct {
		name string
		err  error
		code codes.Code
		msg  string // "" : must not name a pool
	}{
		{"optional upscaler down", upscale(NewUpscaler(dial(t, down), once).InPool("the Up Sampler pool (--upsampler-target x)")), codes.Unavailable, "the Up Sampler pool (--upsampler-target x): no healthy replica could take the call ("},
		{"optional generator down", generate(NewGenerator(dial(t, down), once).InPool("the single-DCGAN pool")), codes.Unavailable, "the single-DCGAN pool: no healthy replica"},
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
