package grpcapi

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/platform/batch"
	"github.com/hirez-ml/hirez/platform/hotswap"
	"github.com/hirez-ml/hirez/platform/server"
	"github.com/hirez-ml/hirez/platform/servertest"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
	"github.com/hirez-ml/hirez/services/upscaler/internal/upscale"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixture struct {
	client pb.UpscalerServiceClient
	conn   *grpc.ClientConn
	holder *hotswap.Holder[*upscale.Model]
	srv    *server.Server
	svc    *upscale.Service
	be     backend.Backend
}

// start serves the upscaler over bufconn with an empty model holder.
func start(t *testing.T, cfg batch.Config) *fixture {
	t.Helper()
	return serve(t, cfg, upscale.DefaultMemory)
}

// startTCP serves the upscaler on a real TCP loopback port with mem's bounds.
func startTCP(t *testing.T, cfg batch.Config, mem upscale.Memory) *fixture {
	t.Helper()
	return serve(t, cfg, mem, servertest.TCP())
}

func serve(t *testing.T, cfg batch.Config, mem upscale.Memory, opts ...servertest.Option) *fixture {
	t.Helper()
	be, err := choose.Open("") // the fastest built in: what the binary serves with
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() }) // runs last: after the models on it are freed
	f := &fixture{be: be}
	s := servertest.Start(t, func(srv *server.Server) {
		f.holder = hotswap.New(nil, upscale.Release, hotswap.OnSwap(func(*hotswap.Version[*upscale.Model]) { srv.SetServing(ServiceName, true) }))
		f.svc, err = upscale.New(f.holder, cfg, Limits, mem, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { // once the server has stopped
			if err := f.svc.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
			f.holder.Close()
		})
		pb.RegisterUpscalerServiceServer(srv, New(f.svc))
	}, append(opts, servertest.WithServerOptions(server.WithModelServices(ServiceName), server.WithGRPCOptions(ServerOptions()...)))...)
	f.client, f.conn, f.srv = pb.NewUpscalerServiceClient(s.Conn), s.Conn, s.Server
	return f
}

// load puts a small, untrained but real upscaler into the holder.
func (f *fixture) load(t *testing.T) *hotswap.Version[*upscale.Model] {
	t.Helper()
	net, err := model.Build("espcn-x2", f.be, model.Options{Side: 32, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	m, err := upscale.NewModel(net, "tiny-sr")
	if err != nil {
		t.Fatal(err)
	}
	return f.holder.Set(m, hotswap.Digest([]byte("tiny-sr")), "mem")
}

// = batch.Config{MaxBatch: 4, MaxWait: time.Millisecond, QueueSize: 16}
var fast = batch.Config{MaxBatch: 4, MaxWait: 2 * time.Millisecond, QueueSize: 16}

func raw(w, h int, fill byte) *pb.RawImage {
	return &pb.RawImage{Rgb: bytes.Repeat([]byte{fill}, w*h*3), Width: int32(w), Height: int32(h), Channels: 3}
}

func TestNotServingUntilModelLoaded(t *testing.T) {
	f := start(t, fast)
	for _, svc := range []string{"", ServiceName} {
		if got := servertest.HealthOf(t, f.conn, svc); got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("health %q before a model = %v, want NOT_SERVING", svc, got)
		}
	}
	_, err := f.client.Upscale(context.Background(), &pb.UpscaleRequest{Images: []*pb.RawImage{raw(8, 8, 1)}})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Upscale before a model = %v, want Unavailable", err)
	}
	f.load(t)
	servertest.WaitServing(t, f.conn, ServiceName) // after the model was loaded
}

func TestUpscaleSizesAndProvenance(t *testing.T) {
	f := start(t, fast)
	v := f.load(t)
	tests := []struct {
		scale, want int32
		passes      int
	}{{0, 2, 1}, {2, 2, 1}, {4, 4, 2}}
	for _, tt := range tests {
		resp, err := f.client.Upscale(context.Background(), &pb.UpscaleRequest{Images: []*pb.RawImage{raw(16, 8, 10), raw(5, 7, 200)}, Scale: tt.scale})
		if err != nil {
			t.Fatalf("scale %d: %v", tt.scale, err)
		}
		got := resp.GetImages()
		if len(got) != 2 || got[0].GetWidth() != 16*tt.want || got[0].GetHeight() != 8*tt.want ||
			got[1].GetWidth() != 5*tt.want || got[1].GetHeight() != 7*tt.want || len(got[1].GetRgb()) != int(5*7*3*tt.want*tt.want) {
			t.Fatalf("scale %d: got %v", tt.scale, got)
		}
		p := resp.GetProvenance()
		if len(p.GetUpscalers()) != tt.passes || p.GetUpscalers()[0].GetVersion() != v.Digest || p.GetUpscalers()[0].GetName() != "tiny-sr" {
			t.Fatalf("scale %d: provenance %v", tt.scale, p)
		}
	}
}

func TestConcurrentEqualSizesBatch(t *testing.T) {
	f := start(t, batch.Config{MaxBatch: 4, MaxWait: 200 * time.Millisecond, QueueSize: 16})
	f.load(t)
	var wg sync.WaitGroup
	sizes := make(chan int32, 4)
	for range 4 {
		wg.Go(func() {
			resp, err := f.client.Upscale(context.Background(), &pb.UpscaleRequest{Images: []*pb.RawImage{raw(8, 8, 3)}})
			if err != nil {
				t.Error(err)
				return
			}
			for _, tm := range resp.GetProvenance().GetTimings() {
				if tm.GetStage() == "upscale" {
					sizes <- tm.GetBatchSize()
				}
			}
		})
	}
	wg.Wait()
	close(sizes)
	for s := range sizes {
		if s != 4 {
			t.Fatalf("batch size %d, want the 4 concurrent calls in one batch", s)
		}
	}
}

func TestValidation(t *testing.T) {
	f := start(t, fast)
	f.load(t)
	bad := raw(8, 8, 0)
	bad.Rgb = bad.Rgb[:10]
	tests := []struct {
		name string
		req  *pb.UpscaleRequest
		msg  string
	}{
		{"no images", &pb.UpscaleRequest{}, "between 1 and 16, got 0"},
		{"too many", &pb.UpscaleRequest{Images: make([]*pb.RawImage, 17)}, "between 1 and 16, got 17"},
		{"scale 3", &pb.UpscaleRequest{Images: []*pb.RawImage{raw(8, 8, 0)}, Scale: 3}, "scale must be 2 or 4"},
		{"negative scale", &pb.UpscaleRequest{Images: []*pb.RawImage{raw(8, 8, 0)}, Scale: -2}, "got -2"},
		{"empty image", &pb.UpscaleRequest{Images: []*pb.RawImage{{}}}, "images[0].channels must be 3"},
		{"channels", &pb.UpscaleRequest{Images: []*pb.RawImage{{Rgb: make([]byte, 4*4*4), Width: 4, Height: 4, Channels: 4}}}, "channels must be 3"},
		{"zero width", &pb.UpscaleRequest{Images: []*pb.RawImage{{Width: 0, Height: 4, Channels: 3}}}, "between 1 and 512"},
		{"huge header, no pixels", &pb.UpscaleRequest{Images: []*pb.RawImage{{Width: 100000, Height: 100000, Channels: 3}}}, "is 100000×100000"},
		{"output too big", &pb.UpscaleRequest{Images: []*pb.RawImage{{Width: 300, Height: 8, Channels: 3}}, Scale: 4}, "over the largest output side 1024"},
		{"byte count", &pb.UpscaleRequest{Images: []*pb.RawImage{bad}}, "has 10 bytes of pixels"},
		{"bad model name", &pb.UpscaleRequest{Images: []*pb.RawImage{raw(8, 8, 0)}, Model: &pb.ModelRef{Name: "-x"}}, `model.name "-x" is not a valid name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.client.Upscale(context.Background(), tt.req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.msg) {
				t.Fatalf("Upscale = %v, want InvalidArgument containing %q", err, tt.msg)
			}
		})
	}
	_, err := f.client.Upscale(context.Background(), &pb.UpscaleRequest{Images: []*pb.RawImage{raw(8, 8, 0)}, Model: &pb.ModelRef{Name: "srcnn-study"}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown model = %v, want NotFound", err)
	}
}

func TestStreamUpscale(t *testing.T) {
	f := start(t, fast)
	f.load(t)
	stream, err := f.client.StreamUpscale(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	for i := range n {
		if err := stream.Send(&pb.StreamUpscaleRequest{Id: int64(100 + i), Image: raw(4+i, 4, byte(i)), Scale: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		i := msg.GetId() - 100
		if msg.GetImage().GetWidth() != int32(2*(4+i)) || msg.GetImage().GetHeight() != 8 {
			t.Fatalf("id %d: %dx%d", msg.GetId(), msg.GetImage().GetWidth(), msg.GetImage().GetHeight())
		}
		seen[msg.GetId()] = true
	}
	if len(seen) != n {
		t.Fatalf("%d results, want %d", len(seen), n)
	}

	// An invalid message ends the stream with InvalidArgument naming its id.
	stream, err = f.client.StreamUpscale(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&pb.StreamUpscaleRequest{Id: 7, Image: raw(4, 4, 0), Scale: 3})
	_, err = stream.Recv()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "id 7") {
		t.Fatalf("invalid stream message = %v, want InvalidArgument naming id 7", err)
	}
}
