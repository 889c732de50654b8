package e2e

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// TestHungUpscalerReplicaIsRoutedAround is issue 15's hung replica: one of
// two upscaler processes is SIGSTOPped (its connections stay open and
// nothing answers). Four concurrent requests with a 10 s deadline all
// complete: hops to the stopped replica time out (hop timeouts from the
// measured hop times), are retried on the other replica, and the stopped
// one is ejected.
func TestHungUpscalerReplicaIsRoutedAround(t *testing.T) {
	s := startStackGateway(t, upModel, "8", []string{"--hop-timeout-min", "1s", "--hop-timeout-max", "3s"})
	ctx := context.Background()
	// Measure hop times first: 24 images, 24 hops at each side.
	if got, err := generate(ctx, s.gateway, &pb.GenerateImagesRequest{Count: 24, Seed: 5}, nil); err != nil || len(got) != 24 {
		t.Fatalf("warm-up: %d images, %v", len(got), err)
	}
	stopped := s.ups[0]
	if err := stopped.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stopped.cmd.Process.Signal(syscall.SIGCONT) }() // so that cleanup can stop it

	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			got, err := generate(rctx, s.gateway, &pb.GenerateImagesRequest{Count: 16, Seed: int64(100 * (i + 1))}, nil)
			if err != nil || len(got) != 16 {
				t.Errorf("request %d with a replica stopped: %d of 16 images, %v", i, len(got), err)
			}
		})
	}
	wg.Wait()
}
