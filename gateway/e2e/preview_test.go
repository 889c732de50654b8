package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/hirez-ml/hirez/engine/imageio"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// previewOrder is what a progressive stream must look like for one image,
// from the e2e generator's 32 px to 256 px: three previews, then the final.
var previewOrder = []struct {
	side  int32
	stage pb.PreviewStage
	pass  int32
}{
	{32, pb.PreviewStage_PREVIEW_STAGE_GENERATOR, 0},
	{64, pb.PreviewStage_PREVIEW_STAGE_UPSCALE, 1},
	{128, pb.PreviewStage_PREVIEW_STAGE_UPSCALE, 2},
}

// checkProgressive checks a whole stream of count images from seed: per
// index, the previews in stage order at the stage sizes, each decoding to
// its side with its seed in tEXt, then the 256 px final, which equals
// finals[index] (the same request without previews) when finals is given.
func checkProgressive(t *testing.T, msgs []*pb.GenerateImagesResponse, count int, seed int64, finals map[int32]*pb.GenerateImagesResponse) {
	t.Helper()
	seen := map[int32]int{} // index → previews so far; -1 once its final came
	for k, m := range msgs {
		if p := m.GetPreview(); p != nil {
			i := p.GetIndex()
			if m.GetPng() != nil || m.GetWidth() != 0 || m.GetProvenance() != nil || m.GetIndex() != 0 || m.GetSeed() != 0 {
				t.Fatalf("message %d: a preview with final fields set: %v", k, m)
			}
			n := seen[i]
			if n < 0 {
				t.Fatalf("message %d: preview of image %d after its final", k, i)
			}
			if n >= len(previewOrder) {
				t.Fatalf("message %d: preview %d of image %d, want %d", k, n+1, i, len(previewOrder))
			}
			w := previewOrder[n]
			if p.GetSide() != w.side || p.GetStage() != w.stage || p.GetPass() != w.pass || p.GetSeed() != seed+int64(i) {
				t.Fatalf("message %d: preview %d of image %d is %d px %v pass %d seed %d, want %d px %v pass %d", k, n, i, p.GetSide(), p.GetStage(), p.GetPass(), p.GetSeed(), w.side, w.stage, w.pass)
			}
			img, err := imageio.Decode(p.GetPng(), imageio.Limits{})
			if err != nil || int32(img.W) != w.side || int32(img.H) != w.side {
				t.Fatalf("message %d: preview PNG: %v, %v", k, img, err)
			}
			if tx := textChunks(t, p.GetPng()); tx["hirez:seed"] != strconv.FormatInt(p.GetSeed(), 10) || !strings.HasPrefix(tx["hirez:generator"], "e2e-gen@sha256:") {
				t.Fatalf("message %d: preview tEXt %v", k, tx)
			}
			seen[i] = n + 1
			continue
		}
		i := m.GetIndex()
		if seen[i] != len(previewOrder) {
			t.Fatalf("message %d: final of image %d after %d previews, want %d first", k, i, seen[i], len(previewOrder))
		}
		seen[i] = -1
		if m.GetWidth() != 256 || m.GetSeed() != seed+int64(i) {
			t.Fatalf("message %d: final %d px seed %d", k, m.GetWidth(), m.GetSeed())
		}
		if finals != nil && string(finals[i].GetPng()) != string(m.GetPng()) {
			t.Fatalf("image %d: the final differs from the same request's without previews", i)
		}
	}
	for i := range int32(count) {
		if seen[i] != -1 {
			t.Fatalf("image %d: no final (%d previews)", i, seen[i])
		}
	}
}

// TestProgressiveStream runs the real generator, two upscalers and the
// gateway on loopback and asks for previews over gRPC and HTTP NDJSON.
func TestProgressiveStream(t *testing.T) {
	s := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const count, seed = 6, 4321

	// Without previews: today's stream, final images only.
	var plain []*pb.GenerateImagesResponse
	finals, err := generate(ctx, s.gateway, &pb.GenerateImagesRequest{Count: count, Seed: seed}, func(m *pb.GenerateImagesResponse) { plain = append(plain, m) })
	if err != nil || len(plain) != count {
		t.Fatalf("without previews: %d messages, %v", len(plain), err)
	}
	for _, m := range plain {
		if m.GetPreview() != nil || m.GetWidth() != 256 {
			t.Fatalf("a client not asking got %v", m)
		}
	}

	t.Run("gRPC", func(t *testing.T) {
		var msgs []*pb.GenerateImagesResponse
		start := time.Now()
		var firstPreview, firstFinal time.Duration
		_, err := generate(ctx, s.gateway, &pb.GenerateImagesRequest{Count: count, Seed: seed, Previews: true}, func(m *pb.GenerateImagesResponse) {
			if m.GetPreview() != nil && firstPreview == 0 {
				firstPreview = time.Since(start)
			}
			if m.GetPreview() == nil && firstFinal == 0 {
				firstFinal = time.Since(start)
			}
			msgs = append(msgs, m)
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != count*(len(previewOrder)+1) {
			t.Fatalf("%d messages, want %d", len(msgs), count*(len(previewOrder)+1))
		}
		checkProgressive(t, msgs, count, seed, finals)
		t.Logf("first preview after %v, first final after %v", firstPreview, firstFinal)
	})

	t.Run("HTTP NDJSON", func(t *testing.T) {
		resp, err := http.Post("http://"+s.httpAddr+"/v1/images:generate", "application/json",
			strings.NewReader(`{"count": 6, "seed": "4321", "previews": true}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("%s, %s", resp.Status, resp.Header.Get("Content-Type"))
		}
		var msgs []*pb.GenerateImagesResponse
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, pb.MaxMessageBytes)
		for sc.Scan() {
			// The line shape: a preview line has the single key "preview".
			var keys map[string]json.RawMessage
			if err := json.Unmarshal(sc.Bytes(), &keys); err != nil {
				t.Fatal(err)
			}
			if _, ok := keys["preview"]; ok && len(keys) != 1 {
				t.Fatalf("preview line with other keys: %s", sc.Bytes()[:min(200, len(sc.Bytes()))])
			}
			var m pb.GenerateImagesResponse
			if err := protojson.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, &m)
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		checkProgressive(t, msgs, count, seed, finals)
		plain := httpGenerate(t, s.httpAddr, `{"count": 2, "seed": "4321"}`)
		for _, m := range plain {
			if m.GetPreview() != nil {
				t.Fatalf("HTTP without previews got a preview line")
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		// One-stage pipeline: nothing to preview, refused before any work
		// (the gateway has no single-DCGAN pool, which would be
		// FAILED_PRECONDITION: the argument is judged first).
		_, err := generate(ctx, s.gateway, &pb.GenerateImagesRequest{Count: 1, Pipeline: pb.Pipeline_PIPELINE_SINGLE_DCGAN, Size: 32, Previews: true}, nil)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "no intermediate image to preview") {
			t.Fatalf("single DCGAN with previews: %v, want InvalidArgument", err)
		}
		resp, err := http.Post("http://"+s.httpAddr+"/v1/images:generate", "application/json",
			strings.NewReader(`{"count": 1, "pipeline": "PIPELINE_SINGLE_DCGAN", "size": 32, "previews": true}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), `"INVALID_ARGUMENT"`) || !strings.Contains(string(body), "no intermediate image to preview") {
			t.Fatalf("HTTP single DCGAN with previews: %s %s", resp.Status, body)
		}
		// Upscale has no progressive stream: the field is unknown there.
		resp, err = http.Post("http://"+s.httpAddr+"/v1/images:upscale", "application/json", strings.NewReader(`{"image": "", "previews": true}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), "previews") {
			t.Fatalf("HTTP upscale with previews: %s %s", resp.Status, body)
		}
		// Size = the generator's side: no pass, so no preview, and no error.
		var msgs []*pb.GenerateImagesResponse
		if _, err := generate(ctx, s.gateway, &pb.GenerateImagesRequest{Count: 2, Seed: 5, Size: 32, Previews: true}, func(m *pb.GenerateImagesResponse) { msgs = append(msgs, m) }); err != nil || len(msgs) != 2 {
			t.Fatalf("size 32 with previews: %d messages, %v", len(msgs), err)
		}
		for _, m := range msgs {
			if m.GetPreview() != nil {
				t.Fatalf("size 32 got a preview")
			}
		}
	})
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("ran out of time")
	}
}
