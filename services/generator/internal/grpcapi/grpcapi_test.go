package grpcapi

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/platform/batch"
	"github.com/hirez-ml/hirez/platform/hotswap"
	"github.com/hirez-ml/hirez/platform/rpcerr"
	"github.com/hirez-ml/hirez/platform/server"
	"github.com/hirez-ml/hirez/platform/servertest"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
	"github.com/hirez-ml/hirez/services/generator/internal/generate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixture struct {
	client pb.GeneratorServiceClient
	conn   *grpc.ClientConn
	holder *hotswap.Holder[*generate.Model]
	srv    *server.Server
	be     backend.Backend
}

// start serves the generator over bufconn with an empty model holder.
func start(t *testing.T, cfg batch.Config) *fixture {
	t.Helper()
	be, err := choose.Open("") // the fastest built in: what the binary serves with
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() }) // runs last: after the models on it are freed
	var holder *hotswap.Holder[*generate.Model]
	s := servertest.Start(t, func(srv *server.Server) {
		holder = hotswap.New(nil, generate.Release, hotswap.OnSwap(func(*hotswap.Version[*generate.Model]) { srv.SetServing(ServiceName, true) }))
		svc, err := generate.New(holder, cfg, generate.Limits{MaxCount: pb.MaxStreamGenerateCount, MaxLatentDim: pb.MaxLatentDim}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { // once the server has stopped
			if err := svc.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
			holder.Close()
		})
		pb.RegisterGeneratorServiceServer(srv, New(svc))
	}, servertest.WithServerOptions(server.WithModelServices(ServiceName)))
	return &fixture{client: pb.NewGeneratorServiceClient(s.Conn), conn: s.Conn, holder: holder, srv: s.Server, be: be}
}

// load puts a small, untrained but real generator into the holder.
func (f *fixture) load(t *testing.T) *hotswap.Version[*generate.Model] {
	t.Helper()
	net, err := model.Build("dcgan-g-study", f.be, model.Options{Side: 32, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	m, err := generate.NewModel(net, "tiny-g", nil)
	if err != nil {
		t.Fatal(err)
	}
	return f.holder.Set(m, hotswap.Digest([]byte("tiny-g")), "mem")
}

var fast = batch.Config{MaxBatch: 4, MaxWait: time.Millisecond, QueueSize: 16}

func TestNotServingUntilModelLoaded(t *testing.T) {
	f := start(t, fast)
	for _, svc := range []string{"", ServiceName} {
		if got := servertest.HealthOf(t, f.conn, svc); got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("health %q before a model = %v, want NOT_SERVING", svc, got)
		}
	}
	_, err := f.client.Generate(context.Background(), &pb.GenerateRequest{Seeds: []int64{1}})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Generate before a model = %v, want Unavailable", err)
	}
	f.load(t)
	servertest.WaitServing(t, f.conn, "") // after the model was loaded
}

func TestGenerateDeterministicPerSeed(t *testing.T) {
	f := start(t, fast)
	v := f.load(t)
	ctx := context.Background()
	resp, err := f.client.Generate(ctx, &pb.GenerateRequest{Seeds: []int64{5, 6, 5, 0, -9}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetImages()) != 5 {
		t.Fatalf("%d images, want 5", len(resp.GetImages()))
	}
	for i, img := range resp.GetImages() {
		raw := img.GetImage()
		if img.GetIndex() != int32(i) || raw.GetWidth() != 32 || raw.GetHeight() != 32 || len(raw.GetRgb()) != 32*32*3 {
			t.Fatalf("image %d: index %d, %dx%d, %d bytes", i, img.GetIndex(), raw.GetWidth(), raw.GetHeight(), len(raw.GetRgb()))
		}
		p := img.GetProvenance()
		if p.GetLatentDim() != 100 || p.GetGenerator().GetName() != "tiny-g" || p.GetGenerator().GetVersion() != v.Digest ||
			p.GetPipeline() != pb.Pipeline_PIPELINE_SINGLE_DCGAN || len(p.GetTimings()) != 2 {
			t.Fatalf("image %d provenance %v", i, p)
		}
	}
	imgs := resp.GetImages()
	if !bytes.Equal(imgs[0].GetImage().GetRgb(), imgs[2].GetImage().GetRgb()) {
		t.Fatal("seed 5 gave different bytes within one batch")
	}
	if bytes.Equal(imgs[0].GetImage().GetRgb(), imgs[1].GetImage().GetRgb()) {
		t.Fatal("seeds 5 and 6 gave identical images")
	}
	// Alone (a batch of one) the same seed gives the same bytes.
	one, err := f.client.Generate(ctx, &pb.GenerateRequest{Seeds: []int64{5}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one.GetImages()[0].GetImage().GetRgb(), imgs[0].GetImage().GetRgb()) {
		t.Fatal("seed 5 alone differs from seed 5 in a batch")
	}
	// The explicit latent of seed 5 gives the same image.
	z := model.Latent(5, 100)
	lat, err := f.client.Generate(ctx, &pb.GenerateRequest{Latents: []*pb.Latent{{Values: z}}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(lat.GetImages()[0].GetImage().GetRgb(), imgs[0].GetImage().GetRgb()) || !lat.GetImages()[0].GetProvenance().GetFromLatent() {
		t.Fatal("latent of seed 5 gives another image")
	}
}

func TestStreamGenerateInOrder(t *testing.T) {
	f := start(t, fast)
	f.load(t)
	seeds := make([]int64, 10)
	for i := range seeds {
		seeds[i] = int64(100 + i)
	}
	stream, err := f.client.StreamGenerate(context.Background(), &pb.StreamGenerateRequest{Seeds: seeds})
	if err != nil {
		t.Fatal(err)
	}
	for i := range seeds {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv %d: %v", i, err)
		}
		if msg.GetImage().GetIndex() != int32(i) || msg.GetImage().GetProvenance().GetSeed() != seeds[i] {
			t.Fatalf("message %d has index %d seed %d", i, msg.GetImage().GetIndex(), msg.GetImage().GetProvenance().GetSeed())
		}
	}
	if _, err := stream.Recv(); err == nil {
		t.Fatal("stream did not end")
	}
}

func TestValidation(t *testing.T) {
	f := start(t, fast)
	f.load(t)
	nan := float32(math.NaN())
	short := make([]float32, 99)
	tests := []struct {
		name string
		req  *pb.GenerateRequest
		code codes.Code
		msg  string
	}{
		{"empty", &pb.GenerateRequest{}, codes.InvalidArgument, "between 1 and 64, got 0"},
		{"too many", &pb.GenerateRequest{Seeds: make([]int64, 65)}, codes.InvalidArgument, "between 1 and 64, got 65"},
		{"both", &pb.GenerateRequest{Seeds: []int64{1}, Latents: []*pb.Latent{{Values: short}}}, codes.InvalidArgument, "not both"},
		{"latent length", &pb.GenerateRequest{Latents: []*pb.Latent{{Values: short}}}, codes.InvalidArgument, "has 99 values; model tiny-g takes latents of 100"},
		{"latent too long", &pb.GenerateRequest{Latents: []*pb.Latent{{Values: make([]float32, 513)}}}, codes.InvalidArgument, "at most 512"},
		{"nan", &pb.GenerateRequest{Latents: []*pb.Latent{{Values: append(make([]float32, 99), nan)}}}, codes.InvalidArgument, "must be finite"},
		{"bad name", &pb.GenerateRequest{Seeds: []int64{1}, Model: &pb.ModelRef{Name: "Bad Name"}}, codes.InvalidArgument, `model.name "Bad Name" is not a valid name`},
		{"bad version", &pb.GenerateRequest{Seeds: []int64{1}, Model: &pb.ModelRef{Version: "sha256:xyz"}}, codes.InvalidArgument, "neither a digest"},
		{"unknown model", &pb.GenerateRequest{Seeds: []int64{1}, Model: &pb.ModelRef{Name: "other"}}, codes.NotFound, `"other" is not served`},
		{"unknown version", &pb.GenerateRequest{Seeds: []int64{1}, Model: &pb.ModelRef{Version: "sha256:" + strings.Repeat("0", 64)}}, codes.NotFound, "not served here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.client.Generate(context.Background(), tt.req)
			if status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.msg) {
				t.Fatalf("Generate = %v, want %v containing %q", err, tt.code, tt.msg)
			}
		})
	}
	if _, err := f.client.Generate(context.Background(), &pb.GenerateRequest{Seeds: []int64{1}, Model: &pb.ModelRef{Name: "tiny-g", Version: "production"}}); err != nil {
		t.Fatalf("Generate with name and alias: %v", err)
	}
}

// loadLabelled puts a small generator trained (as its metadata says) on one
// emoji group into the holder.
func (f *fixture) loadLabelled(t *testing.T, groups string) *hotswap.Version[*generate.Model] {
	t.Helper()
	net, err := model.Build("dcgan-g-study", f.be, model.Options{Side: 32, Seed: 8})
	if err != nil {
		t.Fatal(err)
	}
	m, err := generate.NewModel(net, "tiny-smileys", map[string]string{model.MetaTrainGroups: groups})
	if err != nil {
		t.Fatal(err)
	}
	return f.holder.Set(m, hotswap.Digest([]byte("tiny-smileys")), "mem")
}

func TestLabels(t *testing.T) {
	f := start(t, fast)
	ctx := context.Background()
	const smileys = "Smileys & Emotion"
	v := f.loadLabelled(t, smileys)

	got, err := f.client.ListLabels(ctx, &pb.ListLabelsRequest{})
	if err != nil || got.GetModel().GetName() != "tiny-smileys" || got.GetModel().GetVersion() != v.Digest ||
		len(got.GetLabels()) != 1 || got.GetLabels()[0] != smileys {
		t.Fatalf("ListLabels = %v, %v", got, err)
	}
	resp, err := f.client.Generate(ctx, &pb.GenerateRequest{Seeds: []int64{1, 2}, Label: smileys})
	if err != nil || len(resp.GetImages()) != 2 || resp.GetImages()[1].GetProvenance().GetLabel() != smileys {
		t.Fatalf("Generate with its label = %v, %v", resp, err)
	}
	stream, err := f.client.StreamGenerate(ctx, &pb.StreamGenerateRequest{Seeds: []int64{3}, Label: smileys})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := stream.Recv(); err != nil || msg.GetImage().GetProvenance().GetLabel() != smileys {
		t.Fatalf("StreamGenerate with its label = %v, %v", msg, err)
	}

	for _, tt := range []struct {
		name, label, msg string
		reason           string
	}{
		{"unknown label", "Animals & Nature", `label "Animals & Nature" is not known to model tiny-smileys; its labels: "Smileys & Emotion"`, "UNKNOWN_LABEL"},
		{"case differs", "smileys & emotion", `its labels: "Smileys & Emotion"`, "UNKNOWN_LABEL"},
		{"too long", strings.Repeat("x", 65), "label is 65 bytes; at most 64", "INVALID_ARGUMENT"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.client.Generate(ctx, &pb.GenerateRequest{Seeds: []int64{1}, Label: tt.label})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.msg) || rpcerr.Reason(err) != tt.reason {
				t.Fatalf("Generate = %v (reason %q), want InvalidArgument containing %q, reason %q", err, rpcerr.Reason(err), tt.msg, tt.reason)
			}
			stream, err := f.client.StreamGenerate(ctx, &pb.StreamGenerateRequest{Seeds: []int64{1}, Label: tt.label})
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.msg) {
				t.Fatalf("StreamGenerate = %v, want InvalidArgument containing %q", err, tt.msg)
			}
		})
	}

	// Hot swap to a model trained on every emoji: it knows no label.
	v = f.load(t)
	got, err = f.client.ListLabels(ctx, &pb.ListLabelsRequest{})
	if err != nil || got.GetModel().GetVersion() != v.Digest || len(got.GetLabels()) != 0 {
		t.Fatalf("ListLabels after the swap = %v, %v", got, err)
	}
	_, err = f.client.Generate(ctx, &pb.GenerateRequest{Seeds: []int64{1}, Label: smileys})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), `label "Smileys & Emotion" is not known to model tiny-g: it has no labels`) {
		t.Fatalf("label on an unlabelled model = %v", err)
	}
	if _, err := f.client.ListLabels(ctx, &pb.ListLabelsRequest{Model: &pb.ModelRef{Name: "other"}}); status.Code(err) != codes.NotFound {
		t.Fatalf("ListLabels of another model = %v, want NotFound", err)
	}
}

// TestConditionalLabels serves a class-conditional generator: the label picks
// the class (the same seed draws another image under another label), an
// unlabelled request draws model.ClassOf its latent and says which label that
// is, and a file whose labels do not match its classes is refused.
func TestConditionalLabels(t *testing.T) {
	f := start(t, fast)
	ctx := context.Background()
	cfg, err := model.ConfigFor("dcgan-g-study", 32)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = cfg.WithClasses(2); err != nil {
		t.Fatal(err)
	}
	labels := []string{"Smileys & Emotion", "Flags"}
	meta := map[string]string{model.MetaTrainGroups: strings.Join(labels, ", ")}
	build := func() *model.Network {
		net, err := model.BuildConfig(cfg, f.be, 7)
		if err != nil {
			t.Fatal(err)
		}
		return net
	}
	bad := build()
	if _, err := generate.NewModel(bad, "tiny-cond", map[string]string{model.MetaTrainGroups: "Flags"}); err == nil || !strings.Contains(err.Error(), "2 classes") {
		t.Errorf("2 classes with 1 label: %v", err)
	}
	bad.Free()
	m, err := generate.NewModel(build(), "tiny-cond", meta)
	if err != nil {
		t.Fatal(err)
	}
	f.holder.Set(m, hotswap.Digest([]byte("tiny-cond")), "mem")

	got, err := f.client.ListLabels(ctx, &pb.ListLabelsRequest{})
	if err != nil || strings.Join(got.GetLabels(), "|") != strings.Join(labels, "|") {
		t.Fatalf("ListLabels = %v, %v; want %q in class order", got, err, labels)
	}
	pixels := func(label string, seeds ...int64) *pb.GenerateResponse {
		t.Helper()
		resp, err := f.client.Generate(ctx, &pb.GenerateRequest{Seeds: seeds, Label: label})
		if err != nil {
			t.Fatalf("Generate(label %q): %v", label, err)
		}
		return resp
	}
	a, b := pixels(labels[0], 5), pixels(labels[1], 5)
	if bytes.Equal(a.GetImages()[0].GetImage().GetRgb(), b.GetImages()[0].GetImage().GetRgb()) {
		t.Error("seed 5 draws the same image under both labels")
	}
	if a.GetImages()[0].GetProvenance().GetLabel() != labels[0] || b.GetImages()[0].GetProvenance().GetLabel() != labels[1] {
		t.Errorf("provenance labels %q, %q", a.GetImages()[0].GetProvenance().GetLabel(), b.GetImages()[0].GetProvenance().GetLabel())
	}
	seeds := []int64{1, 2, 3, 4, 5, 6, 7, 8}
	free := pixels("", seeds...)
	for i, img := range free.GetImages() {
		k := model.ClassOf(model.Latent(uint64(seeds[i]), cfg.Latent), 2)
		if img.GetProvenance().GetLabel() != labels[k] {
			t.Errorf("seed %d without a label: provenance %q, want the drawn class's %q", seeds[i], img.GetProvenance().GetLabel(), labels[k])
		}
		if same := pixels(labels[k], seeds[i]); !bytes.Equal(same.GetImages()[0].GetImage().GetRgb(), img.GetImage().GetRgb()) {
			t.Errorf("seed %d without a label differs from the same seed with its drawn label %q", seeds[i], labels[k])
		}
	}
}
