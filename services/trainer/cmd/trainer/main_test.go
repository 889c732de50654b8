package main

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/platform/server"
	"github.com/hirez-ml/hirez/platform/servertest"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

func TestMain(m *testing.M) {
	code := buildAndRun(m)
	os.Exit(code)
}

const testToken = "s3cret-admin-token"

// tiny writes n w×w PNGs (smooth colour gradients) into dir.
func tiny(t testing.TB, dir string, n, w int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		img := image.NewNRGBA(image.Rect(0, 0, w, w))
		for y := range w {
			for x := range w {
				img.Set(x, y, color.NRGBA{uint8((x*255/w + i*37) % 256), uint8((y*255/w + i*91) % 256), uint8((x + y + i*13) * 255 / (2 * w) % 256), 255})
			}
		}
		f, err := os.Create(filepath.Join(dir, strings.Repeat("a", i+1)+".png"))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

type inproc struct {
	conn    *grpc.ClientConn
	dataDir string
}

// startInProcess runs serve on a bufconn listener with a data directory
// holding a tiny dataset and an admin token file.
func startInProcess(t *testing.T, extra ...string) *inproc {
	t.Helper()
	dir := t.TempDir()
	tiny(t, filepath.Join(dir, "datasets", "tiny"), 4, 64)
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conn, _ := serveInProcess(t, append([]string{"--data-dir", dir, "--admin-token-file", tok}, extra...)...)
	return &inproc{conn: conn, dataDir: dir}
}

// serveInProcess runs serve with args (and no metrics, errors-only logs, the
// reference backend) on a bufconn listener until the test ends or it is
// stopped, and returns a connection to it once it is SERVING.
func serveInProcess(t *testing.T, args ...string) (*grpc.ClientConn, *servertest.Running) {
	t.Helper()
	args = append([]string{"--metrics-addr", "", "--log-level", "error", "--backend", "ref"}, args...)
	lis := servertest.ListenBufconn()
	run := servertest.Go(t, func(ctx context.Context) error { return serve(ctx, args, server.WithListener(lis)) })
	conn := lis.Dial(t)
	servertest.WaitServing(t, conn, "")
	return conn, run
}

func admin(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+testToken)
}

func goodSpec() *pb.JobSpec {
	return &pb.JobSpec{
		ModelKind: pb.ModelKind_MODEL_KIND_ESPCN, Preset: "x2", Dataset: "tiny", ModelName: "espcn-tiny",
		Hyperparameters: &pb.Hyperparameters{Steps: 2, BatchSize: 2},
	}
}

func TestHealthServesBothServices(t *testing.T) {
	p := startInProcess(t)
	hc := healthpb.NewHealthClient(p.conn)
	for _, svc := range []string{"", pb.TrainerService_ServiceDesc.ServiceName, pb.ModelRegistryService_ServiceDesc.ServiceName} {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q = %v, %v; want SERVING", svc, resp.GetStatus(), err)
		}
	}
}

func TestCreateJobRejectsBadInput(t *testing.T) {
	p := startInProcess(t)
	tc := pb.NewTrainerServiceClient(p.conn)
	mod := func(f func(s *pb.JobSpec)) *pb.JobSpec { s := goodSpec(); f(s); return s }
	// cpu-bf16 exists only where oneDNN has native bf16; elsewhere it is refused
	// for that reason instead.
	bf16 := "is inference-only"
	if why := choose.Unavailable("cpu-bf16"); why != "" {
		bf16 = why
	}
	cases := []struct {
		name string
		spec *pb.JobSpec
		id   string
		want string // part of the message
	}{
		{"no spec", nil, "", "spec is required"},
		{"no kind", mod(func(s *pb.JobSpec) { s.ModelKind = 0 }), "", "model_kind is required"},
		{"unknown kind enum", mod(func(s *pb.JobSpec) { s.ModelKind = 99 }), "", "99 is not a known ModelKind"},
		{"unknown loss enum", mod(func(s *pb.JobSpec) { s.Hyperparameters.Loss = 42 }), "", "42 is not a known Loss"},
		{"unknown preset", mod(func(s *pb.JobSpec) { s.Preset = "fancy" }), "", `preset "fancy" is not a preset`},
		{"missing dataset", mod(func(s *pb.JobSpec) { s.Dataset = "" }), "", "dataset is required"},
		{"unknown dataset", mod(func(s *pb.JobSpec) { s.Dataset = "nope" }), "", "no such directory"},
		{"dotdot dataset", mod(func(s *pb.JobSpec) { s.Dataset = "datasets/../../etc" }), "", `contains ".."`},
		{"absolute dataset", mod(func(s *pb.JobSpec) { s.Dataset = "/etc" }), "", "absolute path"},
		{"bad size", mod(func(s *pb.JobSpec) { s.ImageSize = 48 }), "", "power of two"},
		{"x2 too big", mod(func(s *pb.JobSpec) { s.ImageSize = 256 }), "", "at most 128"},
		{"negative lr", mod(func(s *pb.JobSpec) { s.Hyperparameters.GeneratorLearningRate = -1 }), "", "generator_learning_rate"},
		{"absurd lr", mod(func(s *pb.JobSpec) { s.Hyperparameters.GeneratorLearningRate = 50 }), "", "generator_learning_rate"},
		{"beta1 one", mod(func(s *pb.JobSpec) { s.Hyperparameters.Beta1 = 1 }), "", "beta1"},
		{"huge batch", mod(func(s *pb.JobSpec) { s.Hyperparameters.BatchSize = 5000 }), "", "batch_size"},
		{"steps and epochs", mod(func(s *pb.JobSpec) { s.Hyperparameters.Epochs = 3 }), "", "not both"},
		{"absurd steps", mod(func(s *pb.JobSpec) { s.Hyperparameters.Steps = 1 << 40 }), "", "steps"},
		{"gan loss on sr", mod(func(s *pb.JobSpec) { s.Hyperparameters.Loss = pb.Loss_LOSS_HINGE }), "", "adversarial"},
		{"d lr on sr", mod(func(s *pb.JobSpec) { s.Hyperparameters.DiscriminatorLearningRate = 1e-4 }), "", "no discriminator"},
		{"bad backend", mod(func(s *pb.JobSpec) { s.Backend = "tpu" }), "", "unknown backend"},
		{"inference-only backend", mod(func(s *pb.JobSpec) { s.Backend = "cpu-bf16" }), "", bf16},
		{"no model name", mod(func(s *pb.JobSpec) { s.ModelName = "" }), "", "model_name is required"},
		{"bad model name", mod(func(s *pb.JobSpec) { s.ModelName = "../evil" }), "", "model_name"},
		{"bad job id", goodSpec(), "Job_1", "job_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := tc.CreateJob(admin(context.Background()), &pb.CreateJobRequest{Spec: c.spec, JobId: c.id})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("code = %v (%v), want InvalidArgument", status.Code(err), err)
			}
			if !strings.Contains(status.Convert(err).Message(), c.want) {
				t.Errorf("message %q does not mention %q", status.Convert(err).Message(), c.want)
			}
		})
	}
	// Nothing half-created: no job rows, no job directories.
	resp, err := tc.ListJobs(context.Background(), &pb.ListJobsRequest{})
	if err != nil || len(resp.GetJobs()) != 0 {
		t.Fatalf("ListJobs = %d jobs, %v; want none", len(resp.GetJobs()), err)
	}
	if ents, _ := os.ReadDir(filepath.Join(p.dataDir, "jobs")); len(ents) != 0 {
		t.Fatalf("jobs dir has %d entries after rejected creates", len(ents))
	}
}

func TestReadsValidateToo(t *testing.T) {
	p := startInProcess(t)
	tc := pb.NewTrainerServiceClient(p.conn)
	rc := pb.NewModelRegistryServiceClient(p.conn)
	ctx := context.Background()
	checks := []struct {
		name string
		err  error
		want codes.Code
	}{}
	add := func(name string, err error, want codes.Code) {
		checks = append(checks, struct {
			name string
			err  error
			want codes.Code
		}{name, err, want})
	}
	_, err := tc.GetJob(ctx, &pb.GetJobRequest{Name: "jobs/nope"})
	add("get unknown job", err, codes.NotFound)
	_, err = tc.GetJob(ctx, &pb.GetJobRequest{Name: "nope"})
	add("get bad name", err, codes.InvalidArgument)
	_, err = tc.ListJobs(ctx, &pb.ListJobsRequest{PageSize: 5000})
	add("page size", err, codes.InvalidArgument)
	_, err = tc.ListJobs(ctx, &pb.ListJobsRequest{States: []pb.JobState{77}})
	add("unknown state enum", err, codes.InvalidArgument)
	_, err = tc.ListJobs(ctx, &pb.ListJobsRequest{PageToken: "garbage!"})
	add("bad page token", err, codes.InvalidArgument)
	_, err = rc.ListModels(ctx, &pb.ListModelsRequest{Kind: 99})
	add("unknown kind enum", err, codes.InvalidArgument)
	_, err = rc.GetModelVersion(ctx, &pb.GetModelVersionRequest{Ref: &pb.ModelRef{Name: "nope"}})
	add("unknown model", err, codes.NotFound)
	_, err = rc.GetModelVersion(ctx, &pb.GetModelVersionRequest{Ref: &pb.ModelRef{Name: "nope", Version: "sha256:xyz"}})
	add("bad version", err, codes.InvalidArgument)
	s, err := rc.DownloadModel(ctx, &pb.DownloadModelRequest{Ref: &pb.ModelRef{Name: "nope"}, ChunkSize: 1 << 30})
	if err == nil {
		_, err = s.Recv()
	}
	add("chunk size", err, codes.InvalidArgument)
	for _, c := range checks {
		if status.Code(c.err) != c.want {
			t.Errorf("%s: code %v (%v), want %v", c.name, status.Code(c.err), c.err, c.want)
		}
	}
}

func TestWritesNeedTheAdminToken(t *testing.T) {
	p := startInProcess(t)
	tc := pb.NewTrainerServiceClient(p.conn)
	rc := pb.NewModelRegistryServiceClient(p.conn)
	ctx := context.Background()
	_, err := tc.CreateJob(ctx, &pb.CreateJobRequest{Spec: goodSpec()})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("create without token: %v, want Unauthenticated", err)
	}
	wrong := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer wrong")
	_, err = tc.CreateJob(wrong, &pb.CreateJobRequest{Spec: goodSpec()})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("create with a wrong token: %v, want PermissionDenied", err)
	}
	basic := metadata.AppendToOutgoingContext(ctx, "authorization", "Basic abc")
	_, err = tc.CancelJob(basic, &pb.CancelJobRequest{Name: "jobs/x"})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("cancel with a malformed header: %v, want Unauthenticated", err)
	}
	// The scheme is case-insensitive (RFC 7235): past authorization, the
	// cancel of a job that does not exist is NOT_FOUND.
	lower := metadata.AppendToOutgoingContext(ctx, "authorization", "bearer "+testToken)
	_, err = tc.CancelJob(lower, &pb.CancelJobRequest{Name: "jobs/nope"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("cancel with a lower-case bearer scheme: %v, want NotFound (authorized)", err)
	}
	_, err = rc.PromoteModel(ctx, &pb.PromoteModelRequest{Model: "m"})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("promote without token: %v, want Unauthenticated", err)
	}
	_, err = rc.SetAlias(wrong, &pb.SetAliasRequest{Model: "m", Alias: "a", Version: "sha256:00"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("set alias with a wrong token: %v, want PermissionDenied", err)
	}
	if resp, err := tc.ListJobs(ctx, &pb.ListJobsRequest{}); err != nil || len(resp.GetJobs()) != 0 {
		t.Errorf("ListJobs = %v, %v", resp, err)
	}
}

func TestWritesRefusedWithoutTokenUnlessInsecure(t *testing.T) {
	dir := t.TempDir()
	tiny(t, filepath.Join(dir, "datasets", "tiny"), 4, 64)
	for _, insecureWrites := range []bool{false, true} {
		args := []string{"--data-dir", dir}
		if insecureWrites {
			args = append(args, "--insecure-allow-writes")
		}
		conn, run := serveInProcess(t, args...)
		tc := pb.NewTrainerServiceClient(conn)
		_, err := tc.CreateJob(context.Background(), &pb.CreateJobRequest{Spec: goodSpec(), JobId: "dev-job"})
		if insecureWrites {
			if err != nil {
				t.Errorf("--insecure-allow-writes: create: %v", err)
			} else if _, err := tc.CancelJob(context.Background(), &pb.CancelJobRequest{Name: "jobs/dev-job"}); err != nil {
				t.Errorf("cancel: %v", err)
			}
		} else if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "--admin-token-file") {
			t.Errorf("no token file: create = %v, want PermissionDenied naming --admin-token-file", err)
		}
		conn.Close()
		if err := run.Stop(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCreateIsIdempotentAndCancelQueued(t *testing.T) {
	// A huge step count keeps the job busy; the second job stays QUEUED (one device).
	p := startInProcess(t)
	tc := pb.NewTrainerServiceClient(p.conn)
	ctx := admin(context.Background())
	long := goodSpec()
	long.Hyperparameters.Steps = 1_000_000
	first, err := tc.CreateJob(ctx, &pb.CreateJobRequest{Spec: long, JobId: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := tc.CreateJob(ctx, &pb.CreateJobRequest{Spec: long, JobId: "busy"})
	if err != nil || again.GetJob().GetCreateTime().AsTime() != first.GetJob().GetCreateTime().AsTime() {
		t.Fatalf("idempotent retry = %v, %v", again, err)
	}
	other := goodSpec()
	other.Preset = "espcn-x2" // same job id, different spec
	if _, err := tc.CreateJob(ctx, &pb.CreateJobRequest{Spec: other, JobId: "busy"}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("same id, other spec: %v, want AlreadyExists", err)
	}
	queued, err := tc.CreateJob(ctx, &pb.CreateJobRequest{Spec: goodSpec(), JobId: "waiting"})
	if err != nil {
		t.Fatal(err)
	}
	if queued.GetJob().GetState() != pb.JobState_JOB_STATE_QUEUED {
		t.Fatalf("state %v", queued.GetJob().GetState())
	}
	// Wait for busy to run, then watch it, cancel the queued one, cancel busy.
	waitState(t, tc, "jobs/busy", pb.JobState_JOB_STATE_RUNNING)
	w, err := tc.WatchJob(context.Background(), &pb.WatchJobRequest{Name: "jobs/busy"})
	if err != nil {
		t.Fatal(err)
	}
	first2, err := w.Recv()
	if err != nil || first2.GetSnapshot() == nil {
		t.Fatalf("first watch message = %v, %v; want a snapshot", first2, err)
	}
	if got, _ := tc.GetJob(ctx, &pb.GetJobRequest{Name: "jobs/waiting"}); got.GetJob().GetState() != pb.JobState_JOB_STATE_QUEUED {
		t.Fatalf("second job %v while the first runs; want QUEUED", got.GetJob().GetState())
	}
	c, err := tc.CancelJob(ctx, &pb.CancelJobRequest{Name: "jobs/waiting"})
	if err != nil || c.GetJob().GetState() != pb.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("cancel queued = %v, %v", c.GetJob().GetState(), err)
	}
	if _, err := tc.CancelJob(ctx, &pb.CancelJobRequest{Name: "jobs/busy"}); err != nil {
		t.Fatal(err)
	}
	var final *pb.StateChange
	for {
		ev, err := w.Recv()
		if err != nil {
			break
		}
		if sc := ev.GetStateChange(); sc != nil {
			final = sc
		}
	}
	if final.GetState() != pb.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("watch ended with %v; want a state change to CANCELLED", final)
	}
	if _, err := tc.ResumeJob(ctx, &pb.ResumeJobRequest{Name: "jobs/nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("resume unknown: %v", err)
	}
	// A late watcher of a terminal job gets the snapshot and the end of stream.
	w2, err := tc.WatchJob(context.Background(), &pb.WatchJobRequest{Name: "jobs/busy"})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := w2.Recv(); err != nil || ev.GetSnapshot().GetState() != pb.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("late watch = %v, %v", ev, err)
	}
	if _, err := w2.Recv(); err == nil {
		t.Fatal("late watch of a terminal job did not end")
	}
	// Paging: two jobs, page size 1.
	l1, err := tc.ListJobs(ctx, &pb.ListJobsRequest{PageSize: 1})
	if err != nil || len(l1.GetJobs()) != 1 || l1.GetNextPageToken() == "" || l1.GetJobs()[0].GetName() != "jobs/waiting" {
		t.Fatalf("page 1 = %v, %v", l1, err)
	}
	l2, err := tc.ListJobs(ctx, &pb.ListJobsRequest{PageSize: 1, PageToken: l1.GetNextPageToken()})
	if err != nil || len(l2.GetJobs()) != 1 || l2.GetJobs()[0].GetName() != "jobs/busy" {
		t.Fatalf("page 2 = %v, %v", l2, err)
	}
	if _, err := tc.ListJobs(ctx, &pb.ListJobsRequest{PageSize: 1, PageToken: l1.GetNextPageToken(), States: []pb.JobState{pb.JobState_JOB_STATE_QUEUED}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("token with other filters: %v", err)
	}
}

func waitState(t *testing.T, tc pb.TrainerServiceClient, name string, want pb.JobState) *pb.Job {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := tc.GetJob(context.Background(), &pb.GetJobRequest{Name: name})
		if err == nil && resp.GetJob().GetState() == want {
			return resp.GetJob()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never reached %v", name, want)
	return nil
}
