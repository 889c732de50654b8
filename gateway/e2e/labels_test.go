package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/platform/rpcerr"
	"github.com/hirez-ml/hirez/platform/servertest"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// saveGenerator writes a small untrained generator with metadata meta to
// path, with its modification time moved by age (so the newest file of a
// directory is the one meant to be served).
func saveGenerator(t *testing.T, path string, seed uint64, meta map[string]string, age time.Duration) {
	t.Helper()
	be, err := choose.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	net, err := model.Build("dcgan-g-stable", be, model.Options{Side: 32, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)) // dot files are not served
	err = net.Save(tmp, meta)
	net.Free()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(age)
	if err := os.Chtimes(tmp, at, at); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestLabels runs the real generator, an upscaler and the gateway over TCP
// with a generator trained (as its metadata says) on one emoji group: its
// label is accepted and recorded, another is INVALID_ARGUMENT naming the one
// it knows (gRPC and HTTP 400), ListLabels (gRPC and GET /v1/labels) returns
// it; after a hot swap to a generator trained on every emoji, the same label
// is refused, since the check uses the version that serves the request.
func TestLabels(t *testing.T) {
	const smileys = "Smileys & Emotion"
	dir := t.TempDir()
	saveGenerator(t, filepath.Join(dir, "v1.safetensors"), 21,
		map[string]string{model.MetaName: "e2e-gen", model.MetaTrainGroups: smileys, "hirez.train.data": "data/noto128/train"}, -time.Minute)
	gen := startProc(t, "generator", "--model", dir, "--model-poll-interval", "50ms", "--max-wait", "1ms")
	up := startProc(t, "upscaler", "--model", upModel, "--max-wait", "1ms")
	httpAddr := servertest.FreeAddr(t)
	gw := startProc(t, "gateway", "--generator-target", gen.addr, "--upscaler-target", up.addr, "--http-addr", httpAddr)
	waitServing(t, gen, "hirez.v1.GeneratorService")
	waitServing(t, up, "hirez.v1.UpscalerService")
	waitServing(t, gw, "")
	client := pb.NewGatewayServiceClient(dial(t, gw.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	list, err := client.ListLabels(ctx, &pb.GatewayServiceListLabelsRequest{})
	if err != nil || list.GetGenerator().GetName() != "e2e-gen" || !pb.IsDigest(list.GetGenerator().GetVersion()) ||
		len(list.GetLabels()) != 1 || list.GetLabels()[0] != smileys {
		t.Fatalf("ListLabels = %v, %v", list, err)
	}
	v1 := list.GetGenerator().GetVersion()

	// Its label: images as usual (64 px: one ×2 pass), the label in the
	// provenance and in the PNG's tEXt.
	imgs, err := generate(ctx, client, &pb.GenerateImagesRequest{Count: 2, Seed: 8, Size: 64, Label: smileys}, nil)
	if err != nil || len(imgs) != 2 {
		t.Fatalf("with its label: %d images, %v", len(imgs), err)
	}
	for i, m := range imgs {
		kv := textChunks(t, m.GetPng())
		if m.GetProvenance().GetLabel() != smileys || kv["hirez:label"] != smileys || m.GetWidth() != 64 || kv["hirez:generator"] != "e2e-gen@"+v1 {
			t.Fatalf("image %d: %dpx, provenance %v, tEXt %v", i, m.GetWidth(), m.GetProvenance(), kv)
		}
	}
	plain, err := generate(ctx, client, &pb.GenerateImagesRequest{Count: 1, Seed: 8, Size: 64}, nil)
	if err != nil || len(plain) != 1 || plain[0].GetProvenance().GetLabel() != "" {
		t.Fatalf("without a label: %v, %v", plain, err)
	}

	// Another label: INVALID_ARGUMENT from the generator, relayed with its
	// message and ErrorInfo reason.
	_, err = generate(ctx, client, &pb.GenerateImagesRequest{Count: 2, Size: 64, Label: "Animals & Nature"}, nil)
	wantMsg := `label "Animals & Nature" is not known to model e2e-gen; its labels: "Smileys & Emotion"`
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), wantMsg) || rpcerr.Reason(err) != "UNKNOWN_LABEL" {
		t.Fatalf("unknown label = %v (reason %q), want InvalidArgument containing %q", err, rpcerr.Reason(err), wantMsg)
	}

	// HTTP: the same error is a 400 with the message; GET /v1/labels lists.
	resp, err := http.Post("http://"+httpAddr+"/v1/images:generate", "application/json",
		strings.NewReader(`{"count": 1, "size": 64, "label": "Animals & Nature"}`))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 400 || e.Error.Code != "INVALID_ARGUMENT" || !strings.Contains(e.Error.Message, wantMsg) {
		t.Fatalf("HTTP unknown label: %d %+v", resp.StatusCode, e)
	}
	resp, err = http.Post("http://"+httpAddr+"/v1/images:generate", "application/json",
		strings.NewReader(`{"count": 1, "size": 64, "label": "Smileys & Emotion"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var line pb.GenerateImagesResponse
	if resp.StatusCode != 200 || protojson.Unmarshal(bytes.TrimSpace(body), &line) != nil || line.GetProvenance().GetLabel() != smileys {
		t.Fatalf("HTTP with its label: %d, %d bytes", resp.StatusCode, len(body))
	}
	getLabels := func() *pb.GatewayServiceListLabelsResponse {
		t.Helper()
		resp, err := http.Get("http://" + httpAddr + "/v1/labels")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var got pb.GatewayServiceListLabelsResponse
		if resp.StatusCode != 200 || protojson.Unmarshal(body, &got) != nil {
			t.Fatalf("GET /v1/labels: %d %s", resp.StatusCode, body)
		}
		return &got
	}
	if got := getLabels(); got.GetGenerator().GetVersion() != v1 || len(got.GetLabels()) != 1 || got.GetLabels()[0] != smileys {
		t.Fatalf("GET /v1/labels = %v", got)
	}

	// Hot swap to a generator trained on every emoji: no labels.
	saveGenerator(t, filepath.Join(dir, "v2.safetensors"), 22, map[string]string{model.MetaName: "e2e-gen"}, time.Minute)
	deadline := time.Now().Add(15 * time.Second)
	var got *pb.GatewayServiceListLabelsResponse
	for got = getLabels(); got.GetGenerator().GetVersion() == v1; got = getLabels() {
		if time.Now().After(deadline) {
			t.Fatal("the unlabelled version was not swapped in")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(got.GetLabels()) != 0 {
		t.Fatalf("labels after the swap: %q", got.GetLabels())
	}
	_, err = generate(ctx, client, &pb.GenerateImagesRequest{Count: 1, Size: 64, Label: smileys}, nil)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), `label "Smileys & Emotion" is not known to model e2e-gen: it has no labels`) {
		t.Fatalf("a label on the unlabelled version = %v", err)
	}
	if _, err := generate(ctx, client, &pb.GenerateImagesRequest{Count: 1, Size: 64}, nil); err != nil {
		t.Fatalf("no label on the unlabelled version: %v", err)
	}
}
