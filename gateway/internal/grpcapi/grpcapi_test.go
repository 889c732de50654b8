package grpcapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/gateway/internal/local"
	"github.com/hirez-ml/hirez/gateway/internal/pipeline"
	"github.com/hirez-ml/hirez/platform/client"
	"github.com/hirez-ml/hirez/platform/server"
	"github.com/hirez-ml/hirez/platform/servertest"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixture struct {
	client pb.GatewayServiceClient
	health healthpb.HealthClient
	http   http.Handler
}

// start serves the gateway over bufconn with real (untrained) models running
// in-process behind the pipeline's interfaces.
func start(t *testing.T) *fixture { return startWith(t, nil) }

// startWith is start with a generator whose weights file's metadata is meta
// (its labels: model.Labels(meta)).
func startWith(t *testing.T, meta map[string]string) *fixture {
	t.Helper()
	be, err := choose.Open("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	gnet, err := model.Build("dcgan-g-study", be, model.Options{Side: 64, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gnet.Free)
	unet, err := model.Build("espcn-x2", be, model.Options{Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unet.Free)
	svc := pipeline.New(local.NewGenerator(gnet, "tiny-g", meta), local.NewUpscaler(unet, "tiny-sr"), Limits)

	s := servertest.Start(t, func(srv *server.Server) { pb.RegisterGatewayServiceServer(srv, New(svc)) },
		servertest.WithClientOptions(client.WithMaxMsgSize(pb.MaxMessageBytes, client.DefaultMaxSendMsgSize)))
	return &fixture{client: pb.NewGatewayServiceClient(s.Conn), health: healthpb.NewHealthClient(s.Conn), http: HTTP(svc, func() bool { return true })}
}

func recvAll(t *testing.T, stream pb.GatewayService_GenerateImagesClient) ([]*pb.GenerateImagesResponse, error) {
	t.Helper()
	var out []*pb.GenerateImagesResponse
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, msg)
	}
}

func TestGenerateImages(t *testing.T) {
	f := start(t)
	resp, err := f.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", resp, err)
	}
	stream, err := f.client.GenerateImages(context.Background(), &pb.GenerateImagesRequest{Count: 3, Seed: 42, Size: 128})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := recvAll(t, stream)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("%d images, %v", len(msgs), err)
	}
	for _, m := range msgs {
		img, err := imageio.Decode(m.GetPng(), imageio.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		p := m.GetProvenance()
		if img.W != 128 || m.GetWidth() != 128 || m.GetSeed() != 42+int64(m.GetIndex()) || p.GetPipeline() != pb.Pipeline_PIPELINE_DCGAN_SRCNN ||
			len(p.GetUpscalers()) != 1 || p.GetGenerator().GetName() != "tiny-g" || p.GetLatentDim() != 100 || p.GetSeed() != m.GetSeed() {
			t.Fatalf("image %d: %dpx, provenance %v", m.GetIndex(), img.W, p)
		}
	}
}

func TestGenerateImagesInvalid(t *testing.T) {
	f := start(t)
	tests := []struct {
		name string
		req  *pb.GenerateImagesRequest
		code codes.Code
		msg  string
	}{
		{"zero count", &pb.GenerateImagesRequest{}, codes.InvalidArgument, "count must be between 1 and 256, got 0"},
		{"negative count", &pb.GenerateImagesRequest{Count: -3}, codes.InvalidArgument, "count must be between 1 and 256, got -3"},
		{"unknown pipeline", &pb.GenerateImagesRequest{Count: 1, Pipeline: 99}, codes.InvalidArgument, "pipeline 99 is not a known pipeline"},
		{"size", &pb.GenerateImagesRequest{Count: 1, Size: 4096}, codes.InvalidArgument, "size must be a power of two"},
		{"size below generator", &pb.GenerateImagesRequest{Count: 1, Size: 32}, codes.InvalidArgument, "cannot be reached from the generator's 64 px"},
		{"bad model name", &pb.GenerateImagesRequest{Count: 1, Generator: &pb.ModelRef{Name: "UPPER"}}, codes.InvalidArgument, "generator.name"},
		{"multistage", &pb.GenerateImagesRequest{Count: 1, Pipeline: pb.Pipeline_PIPELINE_MULTISTAGE_GAN}, codes.FailedPrecondition, "needs an Up Sampler model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream, err := f.client.GenerateImages(context.Background(), tt.req)
			if err == nil {
				_, err = recvAll(t, stream)
			}
			if status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.code, tt.msg)
			}
		})
	}
}

func TestUpscale(t *testing.T) {
	f := start(t)
	var buf bytes.Buffer
	src := imageio.NewRGB(24, 16)
	if err := imageio.EncodePNG(&buf, src); err != nil {
		t.Fatal(err)
	}
	resp, err := f.client.Upscale(context.Background(), &pb.GatewayServiceUpscaleRequest{Image: buf.Bytes(), Scale: 4})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetWidth() != 96 || resp.GetHeight() != 64 || len(resp.GetProvenance().GetUpscalers()) != 2 {
		t.Fatalf("%dx%d, provenance %v", resp.GetWidth(), resp.GetHeight(), resp.GetProvenance())
	}
	for _, bad := range [][]byte{{0x89}, nil, []byte("GIF89a")} {
		_, err := f.client.Upscale(context.Background(), &pb.GatewayServiceUpscaleRequest{Image: bad})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("Upscale(%q) = %v, want InvalidArgument", bad, err)
		}
	}
}

func TestHTTP(t *testing.T) {
	f := start(t)
	srv := httptest.NewServer(f.http)
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/v1/images:generate", "application/json", strings.NewReader(`{"count": 2, "seed": "7", "size": 64}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 16<<20)
	n := 0
	for sc.Scan() {
		var msg pb.GenerateImagesResponse
		if err := protojson.Unmarshal(sc.Bytes(), &msg); err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		if msg.GetWidth() != 64 || len(msg.GetPng()) == 0 {
			t.Fatalf("line %d: %dpx", n, msg.GetWidth())
		}
		n++
	}
	if n != 2 {
		t.Fatalf("%d lines, want 2", n)
	}

	for _, tt := range []struct {
		path, body string
		code       int
		grpcCode   string
	}{
		{"/v1/images:generate", `{"count": 0}`, 400, "INVALID_ARGUMENT"},
		{"/v1/images:generate", `{"count": 1, "pipeline": "PIPELINE_MULTISTAGE_GAN"}`, 400, "FAILED_PRECONDITION"},
		{"/v1/images:generate", `{"count": 1, "pipeline": 42}`, 400, "INVALID_ARGUMENT"},
		{"/v1/images:generate", `not json`, 400, "INVALID_ARGUMENT"},
		{"/v1/images:upscale", `{"image": "iQ=="}`, 400, "INVALID_ARGUMENT"},
	} {
		resp, err := http.Post(srv.URL+tt.path, "application/json", strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		var e errorJSON
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tt.code || e.Error.Code != tt.grpcCode || e.Error.Message == "" {
			t.Fatalf("%s %s: %d %+v, want %d %s", tt.path, tt.body, resp.StatusCode, e, tt.code, tt.grpcCode)
		}
	}
	hz, err := http.Get(srv.URL + "/healthz")
	if err != nil || hz.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", hz, err)
	}
	hz.Body.Close()
}

func TestLabels(t *testing.T) {
	const smileys = "Smileys & Emotion"
	f := startWith(t, map[string]string{model.MetaTrainGroups: smileys})
	ctx := context.Background()
	got, err := f.client.ListLabels(ctx, &pb.GatewayServiceListLabelsRequest{})
	if err != nil || got.GetGenerator().GetName() != "tiny-g" || len(got.GetLabels()) != 1 || got.GetLabels()[0] != smileys {
		t.Fatalf("ListLabels = %v, %v", got, err)
	}
	stream, err := f.client.GenerateImages(ctx, &pb.GenerateImagesRequest{Count: 1, Seed: 3, Size: 64, Label: smileys})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := recvAll(t, stream)
	if err != nil || len(msgs) != 1 || msgs[0].GetProvenance().GetLabel() != smileys {
		t.Fatalf("with its label: %v, %v", msgs, err)
	}
	for _, tt := range []struct {
		name string
		req  *pb.GenerateImagesRequest
		code codes.Code
		msg  string
	}{
		{"unknown label", &pb.GenerateImagesRequest{Count: 1, Size: 64, Label: "Flags"}, codes.InvalidArgument, `label "Flags" is not known to model tiny-g; its labels: "Smileys & Emotion"`},
		{"label too long", &pb.GenerateImagesRequest{Count: 1, Label: strings.Repeat("a", 65)}, codes.InvalidArgument, "label is 65 bytes; at most 64"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stream, err := f.client.GenerateImages(ctx, tt.req)
			if err == nil {
				_, err = recvAll(t, stream)
			}
			if status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.code, tt.msg)
			}
		})
	}
	for _, tt := range []struct {
		req  *pb.GatewayServiceListLabelsRequest
		code codes.Code
	}{
		{&pb.GatewayServiceListLabelsRequest{Pipeline: pb.Pipeline_PIPELINE_SINGLE_DCGAN}, codes.FailedPrecondition},
		{&pb.GatewayServiceListLabelsRequest{Pipeline: 42}, codes.InvalidArgument},
		{&pb.GatewayServiceListLabelsRequest{Generator: &pb.ModelRef{Name: "Bad"}}, codes.InvalidArgument},
	} {
		if _, err := f.client.ListLabels(ctx, tt.req); status.Code(err) != tt.code {
			t.Fatalf("ListLabels(%v) = %v, want %v", tt.req, err, tt.code)
		}
	}

	srv := httptest.NewServer(f.http)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/labels")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var list pb.GatewayServiceListLabelsResponse
	if resp.StatusCode != 200 || protojson.Unmarshal(body, &list) != nil || len(list.GetLabels()) != 1 || list.GetLabels()[0] != smileys {
		t.Fatalf("GET /v1/labels: %d %s", resp.StatusCode, body)
	}
	for _, tt := range []struct {
		method, path, body string
		code               int
		grpcCode, msg      string
	}{
		{"POST", "/v1/images:generate", `{"count": 1, "size": 64, "label": "Flags"}`, 400, "INVALID_ARGUMENT", `its labels: "Smileys & Emotion"`},
		{"GET", "/v1/labels?pipeline=PIPELINE_SINGLE_DCGAN", "", 400, "FAILED_PRECONDITION", "--single-generator-target"},
		{"GET", "/v1/labels?pipeline=3", "", 400, "FAILED_PRECONDITION", "--single-generator-target"},
		{"GET", "/v1/labels?pipeline=bogus", "", 400, "INVALID_ARGUMENT", `pipeline "bogus" is not a pipeline`},
		{"GET", "/v1/labels?model=x", "", 400, "INVALID_ARGUMENT", `unknown query parameter "model"`},
		{"GET", "/v1/labels?generator.name=UPPER", "", 400, "INVALID_ARGUMENT", "generator.name"},
	} {
		req, err := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e errorJSON
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tt.code || e.Error.Code != tt.grpcCode || !strings.Contains(e.Error.Message, tt.msg) {
			t.Fatalf("%s %s %s: %d %+v, want %d %s containing %q", tt.method, tt.path, tt.body, resp.StatusCode, e, tt.code, tt.grpcCode, tt.msg)
		}
	}
}

func TestLabelsOfAnUnlabelledModel(t *testing.T) {
	f := start(t)
	srv := httptest.NewServer(f.http)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/labels?pipeline=PIPELINE_DCGAN_SRCNN")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var fields map[string]json.RawMessage // protojson varies its spacing: compare values
	if resp.StatusCode != 200 || json.Unmarshal(body, &fields) != nil || string(fields["labels"]) != "[]" {
		t.Fatalf("GET /v1/labels of a model with none: %d %s; want \"labels\": []", resp.StatusCode, body)
	}
	stream, err := f.client.GenerateImages(context.Background(), &pb.GenerateImagesRequest{Count: 1, Size: 64, Label: "Smileys & Emotion"})
	if err == nil {
		_, err = recvAll(t, stream)
	}
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "it has no labels") {
		t.Fatalf("a label on an unlabelled model: %v", err)
	}
}
