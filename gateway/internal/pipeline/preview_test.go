package pipeline

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/gateway/internal/admit"
	"github.com/hirez-ml/hirez/platform/fault"
)

// TestPreviewsComeBeforeTheirFinal: with previews, each image's stream is
// its generator output (32 px), its first and second pass (64, 128 px) in
// that order, then the final 256 px image, which is as without previews.
func TestPreviewsComeBeforeTheirFinal(t *testing.T) {
	up := &nearest{delay: func(*imageio.RGB) time.Duration { return time.Millisecond }}
	s := New(seedGen{side: 32}, up, limits)
	imgs, err := collect(t, s, Request{Count: 5, Seed: 10, Previews: true})
	if err != nil {
		t.Fatal(err)
	}
	if up.calls.Load() != 15 {
		t.Fatalf("%d upscale calls, want 15: previews must not add passes", up.calls.Load())
	}
	type want struct {
		stage     Stage
		pass      int
		side      int
		upscalers string
	}
	wants := []want{
		{FromGenerator, 0, 32, ""},
		{FromUpscale, 1, 64, "sr@sha256:sr"},
		{FromUpscale, 2, 128, "sr@sha256:sr,sr@sha256:sr"},
		{Final, 0, 256, "sr@sha256:sr,sr@sha256:sr,sr@sha256:sr"},
	}
	byIndex := map[int][]Image{}
	for _, img := range imgs {
		byIndex[img.Index] = append(byIndex[img.Index], img)
	}
	if len(byIndex) != 5 {
		t.Fatalf("indexes %v", byIndex)
	}
	for i, got := range byIndex {
		if len(got) != len(wants) {
			t.Fatalf("image %d: %d messages, want %d", i, len(got), len(wants))
		}
		for k, w := range wants {
			g := got[k]
			if g.Stage != w.stage || g.Pass != w.pass || g.RGB.W != w.side || g.Seed != 10+int64(i) {
				t.Fatalf("image %d message %d: %v pass %d %d px seed %d, want %v pass %d %d px", i, k, g.Stage, g.Pass, g.RGB.W, g.Seed, w.stage, w.pass, w.side)
			}
			dec, err := imageio.Decode(g.PNG, imageio.Limits{MaxSide: 256, MaxPixels: 256 * 256})
			if err != nil || dec.W != w.side || !bytes.Equal(dec.Pix, g.RGB.Pix) {
				t.Fatalf("image %d message %d: PNG decodes to %v, %v", i, k, dec, err)
			}
			texts, err := imageio.ReadText(bytes.NewReader(g.PNG))
			if err != nil {
				t.Fatal(err)
			}
			tx := map[string]string{}
			for _, x := range texts {
				tx[x.Key] = x.Value
			}
			if tx["hirez:seed"] != strconv.FormatInt(g.Seed, 10) || tx["hirez:generator"] != "g@sha256:g" || tx["hirez:upscalers"] != w.upscalers {
				t.Fatalf("image %d message %d: tEXt %v", i, k, tx)
			}
		}
		if final := got[3]; len(final.Prov.Upscalers) != 3 || final.Prov.Timings[len(final.Prov.Timings)-1].Stage != "encode" {
			t.Fatalf("image %d: final provenance %+v", i, final.Prov)
		}
	}
}

// TestNoPreviewsUnlessAsked: a request without previews gets final images
// only, and one whose size is the generator's side (no pass) gets no
// previews even when it asks.
func TestNoPreviewsUnlessAsked(t *testing.T) {
	s := New(seedGen{side: 32}, &nearest{}, limits)
	for _, r := range []Request{{Count: 3, Seed: 1}, {Count: 3, Seed: 1, Size: 32, Previews: true}} {
		imgs, err := collect(t, s, r)
		if err != nil || len(imgs) != 3 {
			t.Fatalf("%+v: %d images, %v", r, len(imgs), err)
		}
		for _, img := range imgs {
			if img.Stage != Final || img.RGB.W != r.Size && r.Size != 0 {
				t.Fatalf("%+v: image %d is %v at %d px", r, img.Index, img.Stage, img.RGB.W)
			}
		}
	}
}

// TestPreviewIsSentWhileThePassRuns: the preview of the generator's image is
// handed over while the first pass is already running, so previews do not
// wait for the upscaler nor it for them.
func TestPreviewIsSentWhileThePassRuns(t *testing.T) {
	started := make(chan struct{})
	var once sync.Once
	up := &nearest{delay: func(*imageio.RGB) time.Duration {
		once.Do(func() { close(started) })
		return 20 * time.Millisecond
	}}
	s := New(seedGen{side: 32}, up, limits)
	err := s.GenerateImages(context.Background(), Request{Count: 1, Seed: 1, Size: 64, Previews: true}, func(img Image) error {
		if img.Stage == FromGenerator {
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				t.Error("the preview was sent before its pass started, and the pass never did")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPreviewsAreSentUnderTheChainsGrant: every preview is sent while its
// chain holds its admission grant, and fits what the grant accounts.
func TestPreviewsAreSentUnderTheChainsGrant(t *testing.T) {
	adm := admit.New(admit.Config{MaxChains: 4, RequestChains: 4, MaxBytes: 4 * ChainBytes(256), MaxBacklog: 64})
	s := New(seedGen{side: 32}, &nearest{}, limits, WithAdmission(adm))
	var previews int
	err := s.GenerateImages(context.Background(), Request{Count: 8, Seed: 1, Previews: true}, func(img Image) error {
		if img.Stage == Final {
			return nil
		}
		previews++
		st := adm.Stats()
		if st.Bytes < ChainBytes(256) {
			t.Errorf("preview of image %d sent with %d bytes accounted, want at least its chain's %d", img.Index, st.Bytes, ChainBytes(256))
		}
		if got := int64(len(img.PNG) + len(img.RGB.Pix)); got > ChainBytes(256)/4 {
			t.Errorf("preview of %d bytes", got)
		}
		return nil
	})
	if err != nil || previews != 8*3 {
		t.Fatalf("%d previews, %v", previews, err)
	}
}

// TestFailedPreviewFailsTheRequest: a send that fails on a preview (the
// client gone) cancels the pass running beside it and ends the request
// with that error; no goroutine is left (goleak in TestMain).
func TestFailedPreviewFailsTheRequest(t *testing.T) {
	gone := errors.New("client gone")
	up := &nearest{delay: func(*imageio.RGB) time.Duration { return time.Hour }}
	s := New(seedGen{side: 32}, up, limits)
	start := time.Now()
	err := s.GenerateImages(context.Background(), Request{Count: 4, Seed: 1, Previews: true}, func(img Image) error {
		return gone
	})
	if !errors.Is(err, gone) || time.Since(start) > 10*time.Second {
		t.Fatalf("err = %v after %v, want %v at once", err, time.Since(start), gone)
	}
}

func TestPreviewsWithSingleDCGANAreRefused(t *testing.T) {
	s := New(seedGen{side: 32}, &nearest{}, limits, WithSingleGenerator(seedGen{side: 64}))
	_, err := collect(t, s, Request{Count: 1, Pipeline: SingleDCGAN, Size: 64, Previews: true})
	if fault.KindOf(err) != fault.KindInvalid || !strings.Contains(err.Error(), "previews: pipeline SINGLE_DCGAN makes each image in one stage") {
		t.Fatalf("err = %v, want invalid naming previews", err)
	}
}
