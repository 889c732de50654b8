package generate

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/safetensors"
	"github.com/hirez-ml/hirez/platform/batch"
	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/platform/hotswap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openBackend(t *testing.T) backend.Backend {
	t.Helper()
	be, err := choose.Open("")
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
	m, err := NewModel(net, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newService(t *testing.T, holder *hotswap.Holder[*Model], cfg batch.Config) *Service {
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
	holder := hotswap.New[*Model](nil, Release)
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
	holder := hotswap.New[*Model](nil, Release)
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
	s := newService(t, hotswap.New[*Model](nil, Release), batch.Config{MaxBatch: 1, QueueSize: 1})
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
	if _, err := NewModel(net, "", nil); err == nil {
		t.Fatal("an upscaler was accepted as a generator")
	}
	if _, err := Loader(be)(context.Background(), "x", []byte("not safetensors")); err == nil {
		t.Fatal("garbage loaded")
	}
}

// weightsFile is what a trained generator's file holds: the network's weights
// and the metadata meta (plus preset and config).
func weightsFile(t *testing.T, be backend.Backend, seed uint64, meta map[string]string) []byte {
	t.Helper()
	net, err := model.Build("dcgan-g-study", be, model.Options{Side: 32, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	f, err := net.File(meta)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := safetensors.Encode(&buf, f); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestLoaderReadsLabels(t *testing.T) {
	be := openBackend(t)
	for _, tt := range []struct {
		name string
		meta map[string]string
		want []string
	}{
		{"one group", map[string]string{model.MetaName: "smileys", model.MetaTrainGroups: "Smileys & Emotion"}, []string{"Smileys & Emotion"}},
		{"two groups", map[string]string{model.MetaTrainGroups: "Flags, Objects"}, []string{"Flags", "Objects"}},
		{"every emoji", map[string]string{model.MetaName: "emoji", "hirez.train.data": "data/noto128/train"}, nil},
		{"no metadata", nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Loader(be)(context.Background(), "g.safetensors", weightsFile(t, be, 1, tt.meta))
			if err != nil {
				t.Fatal(err)
			}
			defer Release(m)
			if !slices.Equal(m.Labels, tt.want) {
				t.Fatalf("labels %q, want %q", m.Labels, tt.want)
			}
		})
	}
}

// TestLabelIsCheckedAgainstTheServingVersion: a labelled model accepts its
// label (recorded on every image) and rejects others listing the one it
// knows; after a hot swap to a model trained on every emoji, the same label
// is rejected, and Labels follows the swap.
func TestLabelIsCheckedAgainstTheServingVersion(t *testing.T) {
	be := openBackend(t)
	holder := hotswap.New(Loader(be), Release)
	s := newService(t, holder, batch.Config{MaxBatch: 4, MaxWait: time.Millisecond, QueueSize: 16})
	load := func(meta map[string]string, seed uint64) {
		t.Helper()
		dir := t.TempDir()
		path := filepath.Join(dir, "g.safetensors")
		if err := os.WriteFile(path, weightsFile(t, be, seed, meta), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := holder.Load(context.Background(), path, ""); err != nil {
			t.Fatal(err)
		}
	}
	const smileys = "Smileys & Emotion"
	load(map[string]string{model.MetaName: "g", model.MetaTrainGroups: smileys}, 1)

	info, err := s.Labels(ModelRef{})
	if err != nil || !slices.Equal(info.Labels, []string{smileys}) || info.Name != "g" {
		t.Fatalf("Labels = %+v, %v", info, err)
	}
	imgs, err := collect(s, context.Background(), Request{Seeds: []int64{1, 2}, Label: smileys})
	if err != nil || len(imgs) != 2 || imgs[0].Label != smileys || imgs[1].Label != smileys {
		t.Fatalf("with its label: %+v, %v", imgs, err)
	}
	plain, err := collect(s, context.Background(), Request{Seeds: []int64{1}})
	if err != nil || plain[0].Label != "" || !bytes.Equal(plain[0].RGB.Pix, imgs[0].RGB.Pix) {
		t.Fatalf("without a label: %v (a known label must not change the image of a seed)", err)
	}
	_, err = collect(s, context.Background(), Request{Seeds: []int64{1}, Label: "Animals & Nature"})
	if fault.KindOf(err) != fault.KindInvalid || fault.ReasonOf(err) != ReasonUnknownLabel ||
		!strings.Contains(err.Error(), `label "Animals & Nature" is not known to model g; its labels: "Smileys & Emotion"`) {
		t.Fatalf("unknown label: %v (kind %v, reason %q)", err, fault.KindOf(err), fault.ReasonOf(err))
	}

	load(map[string]string{model.MetaName: "g"}, 2) // trained on every emoji
	info, err = s.Labels(ModelRef{})
	if err != nil || len(info.Labels) != 0 {
		t.Fatalf("Labels after the swap = %+v, %v", info, err)
	}
	_, err = collect(s, context.Background(), Request{Seeds: []int64{1}, Label: smileys})
	if fault.KindOf(err) != fault.KindInvalid || !strings.Contains(err.Error(), "it has no labels") {
		t.Fatalf("label on an unlabelled model: %v", err)
	}
	if _, err := collect(s, context.Background(), Request{Seeds: []int64{1}}); err != nil {
		t.Fatalf("no label on an unlabelled model: %v", err)
	}
	if _, err := s.Labels(ModelRef{Name: "other"}); fault.KindOf(err) != fault.KindNotFound {
		t.Fatalf("Labels of another model: %v", err)
	}
}
