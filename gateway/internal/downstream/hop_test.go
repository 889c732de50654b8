package downstream

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/gateway/internal/pipeline"
	"github.com/hirez-ml/hirez/platform/client"
	"github.com/hirez-ml/hirez/platform/rpcerr"
	"github.com/hirez-ml/hirez/platform/servertest"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// doubler is a replica that doubles images by pixel repetition; hung, it
// accepts every call and never answers (a SIGSTOPped process, as the
// caller sees it: the connection stays up, nothing comes back).
type doubler struct {
	pb.UnimplementedUpscalerServiceServer
	hung  bool
	calls atomic.Int64
}

func (d *doubler) Upscale(ctx context.Context, req *pb.UpscaleRequest) (*pb.UpscaleResponse, error) {
	d.calls.Add(1)
	if d.hung {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	in, err := FromRaw(req.GetImages()[0])
	if err != nil {
		return nil, err
	}
	out := imageio.NewRGB(2*in.W, 2*in.H)
	for y := range out.H {
		for x := range out.W {
			r, g, b := in.At(x/2, y/2)
			out.Set(x, y, r, g, b)
		}
	}
	return &pb.UpscaleResponse{Images: []*pb.RawImage{ToRaw(out)}}, nil
}

// serve runs srv's UpscalerService on loopback TCP until the test ends.
func serve(t *testing.T, d *doubler) string {
	t.Helper()
	return servertest.ServeBare(t, func(srv *grpc.Server) { pb.RegisterUpscalerServiceServer(srv, d) }).Addr
}

// TestHungReplicaIsRoutedAround: of two replicas one never answers. Once
// hop times are measured, every call succeeds (the hop that went to the hung
// replica times out and is retried on the other), and the hung replica,
// ejected, gets only a few of the calls.
func TestHungReplicaIsRoutedAround(t *testing.T) {
	good, hung := &doubler{}, &doubler{hung: true}
	conn, err := client.Dial(serve(t, good) + "," + serve(t, hung))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A hop timeout far above a loopback call's time, so that only the hung
	// replica ever reaches it.
	hops := Hops{Quantile: 0.99, Factor: 4, Min: 200 * time.Millisecond, Max: 400 * time.Millisecond, Tries: 3}
	up := NewUpscaler(conn, DefaultRetry).WithHops(hops)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	img := imageio.NewRGB(8, 8)
	var wg sync.WaitGroup
	var failed atomic.Int64
	const calls = 64
	for i := range calls {
		wg.Go(func() {
			if _, _, err := up.Upscale(ctx, img, pipeline.ModelRef{}); err != nil {
				failed.Add(1)
				t.Errorf("call %d: %v", i, err)
			}
		})
		if i%8 == 7 {
			wg.Wait() // in waves, so that later waves see the ejection
		}
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d calls failed with a healthy replica available", failed.Load(), calls)
	}
	if hung.calls.Load() == 0 || hung.calls.Load() > calls/4 {
		t.Fatalf("the hung replica got %d of %d calls: want some (then ejected), not its round-robin half", hung.calls.Load(), calls)
	}
	t.Logf("hung replica got %d calls, the healthy one %d", hung.calls.Load(), good.calls.Load())
}

// TestOnlyHungReplicasFailPublicly: when every try times out the call
// fails DEADLINE_EXCEEDED with a public message (no address), well before
// the caller's own deadline.
func TestOnlyHungReplicasFailPublicly(t *testing.T) {
	addr := serve(t, &doubler{hung: true})
	conn, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	up := NewUpscaler(conn, DefaultRetry).WithHops(Hops{Quantile: 0.99, Factor: 4, Min: 50 * time.Millisecond, Max: 100 * time.Millisecond, Tries: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err = up.Upscale(ctx, imageio.NewRGB(8, 8), pipeline.ModelRef{})
	if status.Code(err) != codes.DeadlineExceeded || ctx.Err() != nil {
		t.Fatalf("%v (caller's ctx: %v); want DEADLINE_EXCEEDED from the hop timeouts", err, ctx.Err())
	}
	if msg := status.Convert(err).Message(); strings.Contains(msg, "127.0.0.1") || !strings.Contains(rpcerr.Detail(err), "hop timeout") {
		t.Fatalf("public message %q, detail %q", msg, rpcerr.Detail(err))
	}
}

// TestDownstreamAddressesStayInternal: a pool with no replica listening
// fails UNAVAILABLE; the message the client sees names no address, the
// detail for the log keeps the dial error.
func TestDownstreamAddressesStayInternal(t *testing.T) {
	down := servertest.FreeAddr(t) // nothing listens here
	conn, err := client.Dial(down)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	once := Retry{Attempts: 2, Backoff: time.Millisecond, Max: time.Millisecond}
	_, _, err = NewUpscaler(conn, once).Upscale(ctx, imageio.NewRGB(4, 4), pipeline.ModelRef{})
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.Unavailable || strings.Contains(msg, down) || strings.Contains(msg, "dial") {
		t.Fatalf("client sees %v %q", status.Code(err), msg)
	}
	if d := rpcerr.Detail(err); !strings.Contains(d, down) {
		t.Fatalf("log detail %q lost the address", d)
	}
}
