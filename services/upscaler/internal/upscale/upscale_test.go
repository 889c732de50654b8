package upscale

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hirez-ml/hirez/engine/backends"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/platform/batch"
	"github.com/hirez-ml/hirez/platform/batch/swap"
	"github.com/hirez-ml/hirez/platform/fault"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var lim = Limits{MaxImages: 16, MaxInputSide: 512, MaxOutputSide: 1024, MaxCallOutputPixels: 4 << 20}

func TestCheckScale(t *testing.T) {
	for _, tt := range []struct{ scale, model, passes int }{{2, 2, 1}, {4, 2, 2}, {8, 2, 3}, {3, 2, 0}, {1, 2, 0}, {4, 4, 1}} {
		got, err := CheckScale(tt.scale, tt.model)
		if got != tt.passes || (err == nil) != (tt.passes > 0) {
			t.Errorf("CheckScale(%d, %d) = %d, %v; want %d passes", tt.scale, tt.model, got, err, tt.passes)
		}
	}
}

func TestCheckHeader(t *testing.T) {
	for _, tt := range []struct {
		w, h, ch, n, scale int
		msg                string
	}{
		{8, 8, 3, 192, 2, ""},
		{8, 8, 4, 256, 2, "channels must be 3"},
		{0, 8, 3, 0, 2, "between 1 and 512"},
		{1 << 30, 1 << 30, 3, 0, 2, "between 1 and 512"}, // no overflow, no allocation
		{512, 8, 3, 512 * 8 * 3, 4, "over the largest output side"},
		{8, 8, 3, 191, 2, "has 191 bytes"},
	} {
		err := lim.CheckHeader("img", tt.w, tt.h, tt.ch, tt.n, tt.scale)
		if (tt.msg == "") != (err == nil) || (err != nil && (!strings.Contains(err.Error(), tt.msg) || fault.KindOf(err) != fault.KindInvalid)) {
			t.Errorf("CheckHeader(%d×%d ch%d %dB ×%d) = %v, want %q", tt.w, tt.h, tt.ch, tt.n, tt.scale, err, tt.msg)
		}
	}
}

func TestBatchesOnlyEqualSizes(t *testing.T) {
	be, err := backends.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	net, err := model.Build("espcn-x2", be, model.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(net, "sr")
	if err != nil {
		t.Fatal(err)
	}
	holder := swap.New[*Model](nil, Release)
	defer holder.Close()
	holder.Set(m, "sha256:x", "mem")
	s, err := New(holder, batch.Config{MaxBatch: 8, MaxWait: 100 * time.Millisecond, QueueSize: 32}, lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	var wg sync.WaitGroup
	var mu sync.Mutex
	batchOf := map[int][]int{} // width → batch sizes seen
	for i := range 6 {
		w := 8 + 4*(i%2) // three 8-wide, three 12-wide
		wg.Go(func() {
			res, err := s.Upscale(context.Background(), Request{Images: []*imageio.RGB{imageio.NewRGB(w, 6)}, Scale: 4})
			if err != nil {
				t.Error(err)
				return
			}
			if res[0].Image.W != 4*w || res[0].Image.H != 24 || len(res[0].Passes) != 2 {
				t.Errorf("%d-wide: got %dx%d in %d passes", w, res[0].Image.W, res[0].Image.H, len(res[0].Passes))
			}
			mu.Lock()
			batchOf[w] = append(batchOf[w], res[0].Passes[0].BatchSize)
			mu.Unlock()
		})
	}
	wg.Wait()
	for w, sizes := range batchOf {
		for _, n := range sizes {
			if n > 3 {
				t.Fatalf("%d-wide images ran in a batch of %d: sizes were mixed", w, n)
			}
		}
	}

	_, err = s.Upscale(context.Background(), Request{Images: []*imageio.RGB{imageio.NewRGB(512, 512), imageio.NewRGB(512, 512), imageio.NewRGB(512, 512), imageio.NewRGB(512, 512), imageio.NewRGB(512, 512)}, Scale: 2})
	if !errors.Is(err, fault.KindInvalid) || !strings.Contains(err.Error(), "split it") {
		t.Fatalf("over the call pixel budget: %v", err)
	}
}
