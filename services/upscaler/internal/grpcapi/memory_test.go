package grpcapi

import (
	"context"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/engine/imageio"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
	"github.com/hirez-ml/hirez/services/upscaler/internal/upscale"
)

// budgetBytes is the in-flight budget of memoryFixture: room for three 24²
// images at ×2 (cut in 16-pixel tiles), not four, and not one 64² image.
const budgetBytes = 50000

// memoryFixture serves on TCP loopback with 16-pixel tiles and budgetBytes;
// cost is what one 24² image at ×2 is accounted.
func memoryFixture(t *testing.T) (f *fixture, cost int64) {
	t.Helper()
	f = startTCP(t, fast, upscale.Memory{TileSide: 16, MaxInFlightBytes: budgetBytes})
	v := f.load(t)
	cost, err := f.svc.Cost(v.Value, 24, 24, 2)
	if err != nil {
		t.Fatal(err)
	}
	big, err := f.svc.Cost(v.Value, 64, 64, 2)
	if err != nil {
		t.Fatal(err)
	}
	if 3*cost > budgetBytes || 4*cost <= budgetBytes || big <= budgetBytes {
		t.Fatalf("a 24² image costs %d, a 64² one %d: budgetBytes %d no longer holds three and no more, and not the 64²", cost, big, budgetBytes)
	}
	return f, cost
}

// TestInFlightBytesBounded: 8 clients over TCP (4 streams of 6 images, 4
// unary callers of 2 calls with 2 images) against a budget of 3 images. The
// accounted bytes never pass the budget, yet every request completes:
// requests wait for room instead of failing.
func TestInFlightBytesBounded(t *testing.T) {
	f, cost := memoryFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			stream, err := f.client.StreamUpscale(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			for i := range 6 {
				if err := stream.Send(&pb.StreamUpscaleRequest{Id: int64(i), Image: raw(24, 24, byte(c)), Scale: 2}); err != nil {
					t.Error(err)
					return
				}
			}
			if err := stream.CloseSend(); err != nil {
				t.Error(err)
				return
			}
			n := 0
			for {
				msg, err := stream.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Errorf("stream %d: %v", c, err)
					return
				}
				if msg.GetImage().GetWidth() != 48 || msg.GetImage().GetHeight() != 48 {
					t.Errorf("stream %d id %d: %d×%d", c, msg.GetId(), msg.GetImage().GetWidth(), msg.GetImage().GetHeight())
				}
				n++
			}
			if n != 6 {
				t.Errorf("stream %d: %d results, want 6", c, n)
			}
		})
		wg.Go(func() {
			for range 2 {
				resp, err := f.client.Upscale(ctx, &pb.UpscaleRequest{Images: []*pb.RawImage{raw(24, 24, 1), raw(24, 24, 2)}, Scale: 2})
				if err != nil {
					t.Errorf("unary %d: %v", c, err)
					return
				}
				if len(resp.GetImages()) != 2 || resp.GetImages()[1].GetWidth() != 48 {
					t.Errorf("unary %d: %v", c, resp.GetImages())
				}
			}
		})
	}
	wg.Wait()
	st := f.svc.InFlight()
	if st.Peak > budgetBytes || st.Peak < cost || st.Bytes != 0 || st.Waiting != 0 {
		t.Errorf("in flight %+v; want a peak between one image (%d) and the budget (%d), nothing left", st, cost, budgetBytes)
	}
	t.Logf("peak %d bytes of a %d budget (%d per image)", st.Peak, budgetBytes, cost)
}

// TestInFlightBudgetWaitsUntilDeadline holds the whole budget from inside
// the process: a call then waits, ends with DEADLINE_EXCEEDED at its
// deadline (not RESOURCE_EXHAUSTED), and one queued when the budget frees up
// completes; a request larger than the whole budget is refused at once.
func TestInFlightBudgetWaitsUntilDeadline(t *testing.T) {
	f, _ := memoryFixture(t)
	ref, err := f.svc.Acquire(upscale.ModelRef{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Release()
	full := []*imageio.RGB{imageio.NewRGB(24, 24), imageio.NewRGB(24, 24), imageio.NewRGB(24, 24)}
	release, err := f.svc.Admit(context.Background(), ref.Version, full, 2)
	if err != nil {
		t.Fatal(err)
	}
	req := &pb.UpscaleRequest{Images: []*pb.RawImage{raw(24, 24, 5)}, Scale: 2}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = f.client.Upscale(ctx, req)
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("call while the budget is full = %v, want DeadlineExceeded", err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := f.client.Upscale(context.Background(), req)
		done <- err
	}()
	for f.svc.InFlight().Waiting == 0 {
		runtime.Gosched()
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("call queued while full, after the budget freed up: %v", err)
	}

	// A 64² image at ×2 costs more than the whole budget: it can never fit.
	_, err = f.client.Upscale(context.Background(), &pb.UpscaleRequest{Images: []*pb.RawImage{raw(64, 64, 5)}, Scale: 2})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "whole in-flight budget") {
		t.Fatalf("request over the whole budget = %v, want ResourceExhausted", err)
	}
	stream, err := f.client.StreamUpscale(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&pb.StreamUpscaleRequest{Id: 9, Image: raw(64, 64, 0), Scale: 2})
	if _, err = stream.Recv(); status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "id 9") {
		t.Fatalf("stream message over the whole budget = %v, want ResourceExhausted naming id 9", err)
	}
	if st := f.svc.InFlight(); st.Bytes != 0 {
		t.Errorf("in flight %+v after every call", st)
	}
}
