package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/engine/safetensors"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// runJob creates a job, waits for it to succeed and returns it.
func runJob(t *testing.T, tc pb.TrainerServiceClient, id string, spec *pb.JobSpec) *pb.Job {
	t.Helper()
	if _, err := tc.CreateJob(admin(context.Background()), &pb.CreateJobRequest{JobId: id, Spec: spec}); err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := tc.GetJob(context.Background(), &pb.GetJobRequest{Name: "jobs/" + id})
		if err != nil {
			t.Fatal(err)
		}
		switch j := resp.GetJob(); j.GetState() {
		case pb.JobState_JOB_STATE_SUCCEEDED:
			return j
		case pb.JobState_JOB_STATE_FAILED, pb.JobState_JOB_STATE_CANCELLED:
			t.Fatalf("job %s: %v: %s", id, j.GetState(), j.GetFailureReason())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s did not finish", id)
	return nil
}

// versionFile reads a registry version's file from the trainer's data dir.
func versionFile(t *testing.T, dataDir string, ref *pb.ModelRef) *safetensors.File {
	t.Helper()
	hex := strings.TrimPrefix(ref.GetVersion(), pb.DigestPrefix)
	f, err := safetensors.ReadFile(filepath.Join(dataDir, "models", ref.GetName(), hex+".safetensors"), safetensors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// maxDiff is the largest |a−b| over the tensors of two files with the same names.
func maxDiff(t *testing.T, a, b *safetensors.File) float64 {
	t.Helper()
	d := 0.0
	for _, x := range a.Tensors {
		y, ok := b.Tensor(x.Name)
		if !ok || len(y.F32) != len(x.F32) {
			t.Fatalf("tensor %s differs in presence or size", x.Name)
		}
		for i := range x.F32 {
			d = max(d, math.Abs(float64(x.F32[i]-y.F32[i])))
		}
	}
	return d
}

// TestWarmStartFromARegisteredVersion: a job with init_from starts from that
// version's weights. With one step at a learning rate of 1e-9 (Adam moves each
// weight by about the learning rate) its published weights are the source's to
// within 1e-6, while the same job without init_from publishes its seeded
// initialisation, far from them. The alias in init_from is pinned to a digest
// and recorded in the published metadata.
func TestWarmStartFromARegisteredVersion(t *testing.T) {
	p := startInProcess(t)
	tc := pb.NewTrainerServiceClient(p.conn)
	src := runJob(t, tc, "source", goodSpec())

	still := func(name string, init *pb.ModelRef) *pb.Job {
		s := goodSpec()
		s.ModelName, s.Seed, s.InitFrom = name, 99, init
		s.Hyperparameters.Steps, s.Hyperparameters.GeneratorLearningRate = 1, 1e-9
		return runJob(t, tc, name, s)
	}
	warm := still("warm", &pb.ModelRef{Name: "espcn-tiny", Version: pb.AliasCandidate})
	cold := still("cold", nil)
	if got := warm.GetSpec().GetInitFrom(); got.GetVersion() != src.GetResult().GetVersion() {
		t.Fatalf("init_from recorded as %v; want pinned to %s", got, src.GetResult().GetVersion())
	}
	srcF := versionFile(t, p.dataDir, src.GetResult())
	warmF := versionFile(t, p.dataDir, warm.GetResult())
	if d := maxDiff(t, srcF, warmF); d > 1e-6 {
		t.Errorf("warm-started weights differ from the source's by up to %g", d)
	}
	if d := maxDiff(t, srcF, versionFile(t, p.dataDir, cold.GetResult())); d < 1e-3 {
		t.Errorf("a fresh job is within %g of the source: the check above cannot tell", d)
	}
	if got, want := warmF.Metadata["hirez.init_from"], "espcn-tiny@"+src.GetResult().GetVersion(); got != want {
		t.Errorf("published metadata hirez.init_from = %q, want %q", got, want)
	}
}

// TestInitFromRejectsOtherModels: a version of another preset or kind, an
// unknown model or version are INVALID_ARGUMENT, and nothing is created.
func TestInitFromRejectsOtherModels(t *testing.T) {
	p := startInProcess(t)
	tc := pb.NewTrainerServiceClient(p.conn)
	s := goodSpec()
	// srcnn-classic is the small SRCNN: one step on the ref backend is quick.
	s.ModelKind, s.Preset, s.ModelName = pb.ModelKind_MODEL_KIND_SRCNN, "classic", "srcnn-classic"
	s.Hyperparameters.Steps, s.Hyperparameters.BatchSize = 1, 1
	src := runJob(t, tc, "source", s)

	for _, c := range []struct {
		name        string
		kind        pb.ModelKind
		preset      string
		init        *pb.ModelRef
		wantMessage string
	}{
		{"other preset", pb.ModelKind_MODEL_KIND_SRCNN, "study", src.GetResult(), `has preset "srcnn-classic"; this job's preset is "srcnn-study"`},
		{"other kind", pb.ModelKind_MODEL_KIND_ESPCN, "x2", src.GetResult(), "is a srcnn model; this job trains a espcn"},
		{"unknown model", pb.ModelKind_MODEL_KIND_SRCNN, "study", &pb.ModelRef{Name: "nope"}, `"nope" is not in the registry`},
		{"unknown version", pb.ModelKind_MODEL_KIND_SRCNN, "study", &pb.ModelRef{Name: "srcnn-classic", Version: pb.DigestPrefix + strings.Repeat("0", 64)}, "has no version"},
		{"no production", pb.ModelKind_MODEL_KIND_SRCNN, "study", &pb.ModelRef{Name: "srcnn-classic"}, `no alias "production"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := goodSpec()
			s.ModelKind, s.Preset, s.ModelName, s.InitFrom = c.kind, c.preset, "warm", c.init
			_, err := tc.CreateJob(admin(context.Background()), &pb.CreateJobRequest{JobId: "warm", Spec: s})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), c.wantMessage) {
				t.Fatalf("create = %v; want InvalidArgument mentioning %q", err, c.wantMessage)
			}
		})
	}
	resp, err := tc.ListJobs(context.Background(), &pb.ListJobsRequest{})
	if err != nil || len(resp.GetJobs()) != 1 {
		t.Fatalf("ListJobs = %d jobs, %v; want only the source", len(resp.GetJobs()), err)
	}
	if _, err := tc.GetJob(context.Background(), &pb.GetJobRequest{Name: "jobs/warm"}); status.Code(err) != codes.NotFound {
		t.Fatalf("rejected job exists: %v", err)
	}
}

// TestDeleteModelVersion: the access check, refusals (aliased, in use by a
// queued job's init_from, unknown, not a digest) and a deletion that removes
// the file and reaches a WatchModels stream as VERSION_DELETED.
func TestDeleteModelVersion(t *testing.T) {
	p := startInProcess(t)
	tc := pb.NewTrainerServiceClient(p.conn)
	rc := pb.NewModelRegistryServiceClient(p.conn)
	ctx := admin(context.Background())
	v1 := runJob(t, tc, "first", goodSpec()).GetResult()
	s := goodSpec()
	s.Seed = 5
	v2 := runJob(t, tc, "second", s).GetResult() // candidate moves to v2
	if v1.GetVersion() == v2.GetVersion() {
		t.Fatal("two jobs published the same bytes")
	}

	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	w, err := rc.WatchModels(watchCtx, &pb.WatchModelsRequest{Models: []string{"espcn-tiny"}})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.GetSnapshot() == nil {
		t.Fatalf("first watch message %v, %v", m, err)
	}

	del := func(ctx context.Context, ref *pb.ModelRef) error {
		_, err := rc.DeleteModelVersion(ctx, &pb.DeleteModelVersionRequest{Ref: ref})
		return err
	}
	wrong := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer wrong")
	unknown := &pb.ModelRef{Name: "espcn-tiny", Version: pb.DigestPrefix + strings.Repeat("0", 64)}
	for _, c := range []struct {
		name string
		err  error
		code codes.Code
		msg  string
	}{
		{"no token", del(context.Background(), v1), codes.Unauthenticated, "Bearer"},
		{"wrong token", del(wrong, v1), codes.PermissionDenied, "not this trainer's admin token"},
		{"aliased", del(ctx, v2), codes.FailedPrecondition, `alias "candidate"`},
		{"unknown version", del(ctx, unknown), codes.NotFound, "has no version"},
		{"unknown model", del(ctx, &pb.ModelRef{Name: "nope", Version: v1.GetVersion()}), codes.NotFound, `"nope"`},
		{"an alias", del(ctx, &pb.ModelRef{Name: "espcn-tiny", Version: "candidate"}), codes.InvalidArgument, "not an alias"},
		{"no version", del(ctx, &pb.ModelRef{Name: "espcn-tiny"}), codes.InvalidArgument, "ref.version is required"},
		{"no ref", del(ctx, nil), codes.InvalidArgument, "ref.name is required"},
	} {
		if status.Code(c.err) != c.code || !strings.Contains(status.Convert(c.err).Message(), c.msg) {
			t.Errorf("%s: %v; want %v mentioning %q", c.name, c.err, c.code, c.msg)
		}
	}

	// A queued job that starts from v1 keeps it: a long job holds the device.
	long := goodSpec()
	long.ModelName, long.Hyperparameters.Steps = "busy", 1_000_000
	if _, err := tc.CreateJob(ctx, &pb.CreateJobRequest{JobId: "busy", Spec: long}); err != nil {
		t.Fatal(err)
	}
	warm := goodSpec()
	warm.ModelName, warm.InitFrom = "warm", v1
	if _, err := tc.CreateJob(ctx, &pb.CreateJobRequest{JobId: "warm", Spec: warm}); err != nil {
		t.Fatal(err)
	}
	if err := del(ctx, v1); status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "jobs/warm (queued) starts from it") {
		t.Errorf("delete a version a queued job starts from: %v", err)
	}
	for _, id := range []string{"warm", "busy"} {
		if _, err := tc.CancelJob(ctx, &pb.CancelJobRequest{Name: "jobs/" + id}); err != nil {
			t.Fatal(err)
		}
	}
	waitState(t, tc, "jobs/busy", pb.JobState_JOB_STATE_CANCELLED)

	path := filepath.Join(p.dataDir, "models", "espcn-tiny", strings.TrimPrefix(v1.GetVersion(), pb.DigestPrefix)+".safetensors")
	resp, err := rc.DeleteModelVersion(ctx, &pb.DeleteModelVersionRequest{Ref: v1})
	if err != nil || resp.GetVersion().GetRef().GetVersion() != v1.GetVersion() {
		t.Fatalf("delete v1 = %v, %v", resp, err)
	}
	if _, err := safetensors.ReadFile(path, safetensors.Options{}); err == nil {
		t.Error("the version's file is still there")
	}
	if _, err := rc.GetModelVersion(context.Background(), &pb.GetModelVersionRequest{Ref: v1}); status.Code(err) != codes.NotFound {
		t.Errorf("get a deleted version: %v", err)
	}
	if err := del(ctx, v1); status.Code(err) != codes.NotFound {
		t.Errorf("delete twice: %v", err)
	}
	for {
		m, err := w.Recv()
		if err != nil {
			t.Fatalf("watch ended before VERSION_DELETED: %v", err)
		}
		ev := m.GetEvent()
		if ev.GetType() == pb.ModelEventType_MODEL_EVENT_TYPE_VERSION_DELETED {
			if ev.GetModel() != "espcn-tiny" || ev.GetVersion() != v1.GetVersion() {
				t.Fatalf("VERSION_DELETED %v; want %s", ev, fmt.Sprint(v1))
			}
			break
		}
	}
	ms, err := rc.ListModels(context.Background(), &pb.ListModelsRequest{})
	if err != nil || len(ms.GetModels()) != 1 || ms.GetModels()[0].GetVersionCount() != 1 {
		t.Fatalf("ListModels after delete = %v, %v; want espcn-tiny with one version", ms, err)
	}
}

// TestKeepVersions: with --keep-versions 1, the second published version
// deletes the first once the candidate alias has moved off it.
func TestKeepVersions(t *testing.T) {
	p := startInProcess(t, "--keep-versions", "1")
	tc := pb.NewTrainerServiceClient(p.conn)
	rc := pb.NewModelRegistryServiceClient(p.conn)
	v1 := runJob(t, tc, "first", goodSpec()).GetResult()
	s := goodSpec()
	s.Seed = 5
	v2 := runJob(t, tc, "second", s).GetResult()
	resp, err := rc.ListModelVersions(context.Background(), &pb.ListModelVersionsRequest{Model: "espcn-tiny"})
	if err != nil || len(resp.GetVersions()) != 1 || resp.GetVersions()[0].GetRef().GetVersion() != v2.GetVersion() {
		t.Fatalf("versions = %v, %v; want only %s", resp, err, v2.GetVersion())
	}
	if _, err := rc.GetModelVersion(context.Background(), &pb.GetModelVersionRequest{Ref: v1}); status.Code(err) != codes.NotFound {
		t.Fatalf("the first version: %v; want NotFound", err)
	}
}

func TestKeepVersionsFlag(t *testing.T) {
	_, err := parseFlags([]string{"--keep-versions", "-1"})
	if err == nil || !strings.Contains(err.Error(), "--keep-versions") {
		t.Fatalf("--keep-versions -1: %v", err)
	}
}
