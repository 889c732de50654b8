package e2e

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/platform/rpcerr"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// TestOverloadIsShedAtTheDoor: 6 clients at once ask for 32 images each
// from a gateway that admits 48 images of backlog (one request at a time,
// in effect). Every call either gets all of its images or is refused with
// RESOURCE_EXHAUSTED and a retry hint before its first image; none fails
// after an image was sent. While one runs, HTTP is refused with 429 and a
// Retry-After header.
func TestOverloadIsShedAtTheDoor(t *testing.T) {
	s := startStackGateway(t, upModel, "8", []string{"--max-chains", "8", "--request-chains", "8", "--max-backlog", "48"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var (
		mu       sync.Mutex
		ok, shed int
		wg       sync.WaitGroup
	)
	for i := range 6 {
		wg.Go(func() {
			got, err := generate(ctx, s.gateway, &pb.GenerateImagesRequest{Count: 32, Seed: int64(1 + 100*i), Size: 64}, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && len(got) == 32:
				ok++
			case len(got) == 0 && status.Code(err) == codes.ResourceExhausted:
				shed++
				if d, has := rpcerr.RetryDelay(status.Convert(err)); !has || d <= 0 {
					t.Errorf("refusal without a retry hint: %v", err)
				}
				if reason := rpcerr.Reason(err); reason != "GATEWAY_BUSY" {
					t.Errorf("refusal reason %q: %v", reason, err)
				}
			default:
				t.Errorf("call %d: %d images, then %v (a call is either served whole or refused before its first image)", i, len(got), err)
			}
		})
	}
	wg.Wait()
	if ok == 0 || shed == 0 {
		t.Fatalf("%d served, %d refused: want both", ok, shed)
	}
	t.Logf("%d served, %d refused at the door", ok, shed)

	// While a long call runs (the gateway admits any one call when idle),
	// HTTP is refused the same way, with Retry-After in whole seconds.
	long, cancelLong := context.WithCancel(ctx)
	defer cancelLong()
	openStream(t, long, s.gateway, &pb.GenerateImagesRequest{Count: 256, Seed: 7})
	resp, err := http.Post("http://"+s.httpAddr+"/v1/images:generate", "application/json", strings.NewReader(`{"count": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancelLong()
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != http.StatusTooManyRequests || err != nil || secs < 1 {
		t.Fatalf("HTTP during overload: %s, Retry-After %q; want 429 and a number of seconds", resp.Status, resp.Header.Get("Retry-After"))
	}
}
