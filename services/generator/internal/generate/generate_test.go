package generate

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backends"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/platform/batch"
	"github.com/hirez-ml/hirez/platform/batch/swap"
	"github.com/hirez-ml/hirez/platform/fault"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openBackend(t *testing.T) backend.Backend {
	t.Helper()
	be, err := backends.Open("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	return be
}

func buildModel(t *testing.T, be backend.Backend, seed uint64, name string) *Model {
	t.Helper()
	net, err := model.Build("dcgan-g-study", be, model.Options{Side: 32, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(net, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newService(t *testing.T, holder *swap.Holder[*Model], cfg batch.Config) *Service {
	t.Helper()
	s, err := New(holder, cfg, Limits{MaxCount: 64, MaxLatentDim: 512}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
		holder.Close()
	})
	return s
}

func collect(s *Service, ctx context.Context, r Request) ([]Image, error) {
	var out []Image
	err := s.Generate(ctx, r, func(img Image) error { out = append(out, img); return nil })
	return out, err
}

func TestHotSwapFinishesInFlightOnOldVersion(t *testing.T) {
	be := openBackend(t)
	holder := swap.New[*Model](nil, Release)
	s := newService(t, holder, batch.Config{MaxBatch: 8, MaxWait: 300 * time.Millisecond, QueueSize: 16})
	m1 := buildModel(t, be, 1, "g")
	v1 := holder.Set(m1, "sha256:v1", "mem")

	var (
		wg  sync.WaitGroup
		got []Image
		err error
	)
	wg.Go(func() { got, err = collect(s, context.Background(), Request{Seeds: []int64{3}}) })
	// The request waits up to MaxWait for its batch to fill; swap meanwhile.
	deadline := time.Now().Add(5 * time.Second)
	for s.batcher.Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("request never queued")
		}
		time.Sleep(time.Millisecond)
	}
	m2 := buildModel(t, be, 2, "g")
	holder.Set(m2, "sha256:v2", "mem")
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Model.Version != v1.Digest {
		t.Fatalf("in-flight request finished on %s, want the version it started with (%s)", got[0].Model.Version, v1.Digest)
	}
	if err := m1.Do(func(*model.Network) error { return nil }); !errors.Is(err, model.ErrReleased) {
		t.Fatal("the old version was not released after its last request")
	}
	after, err := collect(s, context.Background(), Request{Seeds: []int64{3}})
	if err != nil || after[0].Model.Version != "sha256:v2" {
		t.Fatalf("after the swap: %v, %v", after, err)
	}
	if bytes.Equal(after[0].RGB.Pix, got[0].RGB.Pix) {
		t.Fatal("v1 and v2 (different weights) made the same image")
	}
}

func TestValidate(t *testing.T) {
	be := openBackend(t)
	holder := swap.New[*Model](nil, Release)
	s := newService(t, holder, batch.Config{MaxBatch: 4, MaxWait: time.Millisecond, QueueSize: 16})
	holder.Set(buildModel(t, be, 1, "g"), "sha256:v1", "mem")
	inf := float32(math.Inf(1))
	tests := []struct {
		name string
		r    Request
		kind fault.Kind
		msg  string
	}{
		{"none", Request{}, fault.KindInvalid, "between 1 and 64, got 0"},
		{"too many", Request{Seeds: make([]int64, 65)}, fault.KindInvalid, "got 65"},
		{"both", Request{Seeds: []int64{1}, Latents: [][]float32{make([]float32, 100)}}, fault.KindInvalid, "not both"},
		{"short latent", Request{Latents: [][]float32{make([]float32, 3)}}, fault.KindInvalid, "has 3 values; model g takes latents of 100"},
		{"inf", Request{Latents: [][]float32{append(make([]float32, 99), inf)}}, fault.KindInvalid, "latents[0].values[99] is +Inf"},
		{"other model", Request{Seeds: []int64{1}, Model: ModelRef{Name: "h"}}, fault.KindNotFound, `model "h" is not served`},
		{"other version", Request{Seeds: []int64{1}, Model: ModelRef{Version: "sha256:zz"}}, fault.KindNotFound, "current version is sha256:v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := collect(s, context.Background(), tt.r)
			if fault.KindOf(err) != tt.kind || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v (kind %v), want %v containing %q", err, fault.KindOf(err), tt.kind, tt.msg)
			}
		})
	}
}

func TestNoModelIsUnavailable(t *testing.T) {
	s := newService(t, swap.New[*Model](nil, Release), batch.Config{MaxBatch: 1, QueueSize: 1})
	_, err := collect(s, context.Background(), Request{Seeds: []int64{1}})
	if !errors.Is(err, fault.KindUnavailable) {
		t.Fatalf("err = %v, want unavailable", err)
	}
}

func TestLoaderRejectsNonGenerators(t *testing.T) {
	be := openBackend(t)
	net, err := model.Build("espcn-x2", be, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	if _, err := NewModel(net, ""); err == nil {
		t.Fatal("an upscaler was accepted as a generator")
	}
	if _, err := Loader(be)(context.Background(), "x", []byte("not safetensors")); err == nil {
		t.Fatal("garbage loaded")
	}
}
