package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/platform/servertest"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"

	"github.com/hirez-ml/hirez/services/trainer/cmdline"
)

// proc is a trainer process serving on real TCP.
type proc struct {
	cmd  *exec.Cmd
	addr string
	conn *grpc.ClientConn
	logs *servertest.Buffer
	done chan error
}

func startProcess(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	p := &proc{addr: servertest.FreeAddr(t), logs: &servertest.Buffer{}, done: make(chan error, 1)}
	args := append([]string{"--grpc-addr", p.addr, "--metrics-addr", "", "--data-dir", dataDir,
		"--admin-token-file", filepath.Join(dataDir, "token"), "--log-format", "console", "--shutdown-timeout", "5s"}, extra...)
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	p.conn = servertest.Dial(t, p.addr)
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("trainer %s log:\n%s", p.addr, p.logs.String())
		}
	})
	servertest.WaitServing(t, p.conn, "")
	return p
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p.conn.Close()
}

func e2eBackend() string {
	if slices.Contains(choose.Names(), "cpu") {
		return "cpu"
	}
	return "ref"
}

// watchUntil follows a job's events until stop returns true or the stream ends.
func watchUntil(t *testing.T, tc pb.TrainerServiceClient, name string, stop func(*pb.WatchJobResponse) bool) []*pb.WatchJobResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w, err := tc.WatchJob(ctx, &pb.WatchJobRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	var evs []*pb.WatchJobResponse
	for {
		ev, err := w.Recv()
		if err != nil {
			return evs
		}
		evs = append(evs, ev)
		if stop(ev) {
			return evs
		}
	}
}

// TestEndToEndKillResumePublishDownload runs a real trainer over TCP: a tiny
// ESPCN trains, the process is SIGKILLed after a checkpoint, restarted, the job
// resumed by hand, killed again, restarted with --auto-resume, and finishes;
// its model is published, downloadable with a matching sha256, and promotable.
func TestEndToEndKillResumePublishDownload(t *testing.T) {
	dir := t.TempDir()
	// 9 images, one per step (4 patches each): 9 steps an epoch. Checkpoints
	// every 4 steps never land on an epoch's end before step 36, which keeps
	// clear of engine/dataset's Restore at the very end of an epoch (it fails
	// with "fewer usable images than one batch"; reported to the engine).
	tiny(t, filepath.Join(dir, "datasets", "tiny"), 9, 64)
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(testToken), 0o600); err != nil {
		t.Fatal(err)
	}
	p1 := startProcess(t, dir)
	tc := pb.NewTrainerServiceClient(p1.conn)
	const steps, every = 34, 4
	resp, err := tc.CreateJob(admin(context.Background()), &pb.CreateJobRequest{JobId: "e2e", Spec: &pb.JobSpec{
		ModelKind: pb.ModelKind_MODEL_KIND_ESPCN, Preset: "x2", Dataset: "tiny", ModelName: "espcn-e2e",
		Backend: e2eBackend(), Seed: 7,
		Hyperparameters: &pb.Hyperparameters{Steps: steps, BatchSize: 4, CheckpointIntervalSteps: every, SampleIntervalSteps: 8},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetJob().GetState() != pb.JobState_JOB_STATE_QUEUED {
		t.Fatalf("new job %v", resp.GetJob().GetState())
	}
	evs := watchUntil(t, tc, "jobs/e2e", func(ev *pb.WatchJobResponse) bool {
		return ev.GetCheckpoint().GetStep() >= 2*every
	})
	var sawSample bool
	for _, ev := range evs {
		if s := ev.GetSample(); s != nil && bytes.HasPrefix(s.GetPng(), []byte("\x89PNG")) {
			sawSample = true
		}
	}
	if !sawSample {
		t.Error("no sample grid PNG before the second checkpoint")
	}
	p1.kill(t)

	// Restart without --auto-resume: the job is INTERRUPTED, with its checkpoint.
	p2 := startProcess(t, dir)
	tc = pb.NewTrainerServiceClient(p2.conn)
	got, err := tc.GetJob(context.Background(), &pb.GetJobRequest{Name: "jobs/e2e"})
	if err != nil {
		t.Fatal(err)
	}
	j := got.GetJob()
	if j.GetState() != pb.JobState_JOB_STATE_INTERRUPTED || !strings.Contains(j.GetFailureReason(), "crash") {
		t.Fatalf("after SIGKILL: %v %q; want INTERRUPTED (crash)", j.GetState(), j.GetFailureReason())
	}
	ckpt := j.GetLatestCheckpoint().GetStep()
	if ckpt < 2*every {
		t.Fatalf("latest checkpoint step %d, want >= %d", ckpt, 2*every)
	}
	if _, err := tc.ResumeJob(context.Background(), &pb.ResumeJobRequest{Name: "jobs/e2e"}); err == nil {
		t.Fatal("resume without a token succeeded")
	}
	if r, err := tc.ResumeJob(admin(context.Background()), &pb.ResumeJobRequest{Name: "jobs/e2e"}); err != nil || r.GetJob().GetState() != pb.JobState_JOB_STATE_QUEUED {
		t.Fatalf("resume = %v, %v", r.GetJob().GetState(), err)
	}
	// The first progress after resuming continues from the checkpoint, not step 1.
	var firstStep int64 = -1
	watchUntil(t, tc, "jobs/e2e", func(ev *pb.WatchJobResponse) bool {
		if p := ev.GetProgress(); p != nil && firstStep < 0 {
			firstStep = p.GetStep()
		}
		return ev.GetCheckpoint().GetStep() >= ckpt+2*every
	})
	if firstStep <= ckpt {
		t.Fatalf("first step after resume %d; want > checkpoint step %d", firstStep, ckpt)
	}
	p2.kill(t)

	// Restart with --auto-resume: the job continues by itself and finishes.
	p3 := startProcess(t, dir, "--auto-resume")
	tc = pb.NewTrainerServiceClient(p3.conn)
	evs = watchUntil(t, tc, "jobs/e2e", func(*pb.WatchJobResponse) bool { return false })
	// The job may finish before the watch starts: then the snapshot says so.
	lastEv := evs[len(evs)-1]
	final := lastEv.GetStateChange().GetState()
	if lastEv.GetSnapshot() != nil {
		final = lastEv.GetSnapshot().GetState()
	}
	if final != pb.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("watch ended with %v; want SUCCEEDED", evs[len(evs)-1])
	}
	got, err = tc.GetJob(context.Background(), &pb.GetJobRequest{Name: "jobs/e2e"})
	if err != nil {
		t.Fatal(err)
	}
	j = got.GetJob()
	if j.GetAttempts() != 3 || j.GetProgress().GetStep() != steps || j.GetResult() == nil {
		t.Fatalf("finished job: attempts %d step %d result %v", j.GetAttempts(), j.GetProgress().GetStep(), j.GetResult())
	}

	// Published: candidate alias, downloadable with a matching sha256.
	rc := pb.NewModelRegistryServiceClient(p3.conn)
	v, err := rc.GetModelVersion(context.Background(), &pb.GetModelVersionRequest{Ref: &pb.ModelRef{Name: "espcn-e2e", Version: pb.AliasCandidate}})
	if err != nil {
		t.Fatal(err)
	}
	if v.GetVersion().GetRef().GetVersion() != j.GetResult().GetVersion() || v.GetVersion().GetSourceJob() != "jobs/e2e" {
		t.Fatalf("candidate %v, job result %v", v.GetVersion().GetRef(), j.GetResult())
	}
	out := filepath.Join(t.TempDir(), "model.safetensors")
	path, digest, err := cmdline.Download(context.Background(), rc, &pb.ModelRef{Name: "espcn-e2e", Version: pb.AliasCandidate}, out)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if want := pb.DigestPrefix + hex.EncodeToString(sum[:]); digest != want || digest != j.GetResult().GetVersion() {
		t.Fatalf("downloaded digest %s, file sha256 %s, job result %s", digest, want, j.GetResult().GetVersion())
	}
	stored := filepath.Join(dir, "models", "espcn-e2e", strings.TrimPrefix(digest, pb.DigestPrefix)+".safetensors")
	if b, err := os.ReadFile(stored); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("registry file %s: %v", stored, err)
	}

	// First promotion: no production yet, so the canary passes.
	pr, err := rc.PromoteModel(admin(context.Background()), &pb.PromoteModelRequest{Model: "espcn-e2e"})
	if err != nil {
		t.Fatal(err)
	}
	if !pr.GetPromoted() || pr.GetCanary().GetMetric() != "psnr_y" || pr.GetCanary().OldValue != nil {
		t.Fatalf("promote = %v", pr)
	}

	// A resumed download from the middle of the file gets exactly the rest.
	half := int64(len(data) / 2)
	ds, err := rc.DownloadModel(context.Background(), &pb.DownloadModelRequest{Ref: &pb.ModelRef{Name: "espcn-e2e", Version: digest}, Offset: half, ChunkSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var rest []byte
	for {
		msg, err := ds.Recv()
		if err != nil {
			break
		}
		if msg.GetOffset() != half+int64(len(rest)) || msg.GetTotalSize() != int64(len(data)) || msg.GetSha256() != strings.TrimPrefix(digest, pb.DigestPrefix) {
			t.Fatalf("chunk at %d of %d (%s)", msg.GetOffset(), msg.GetTotalSize(), msg.GetSha256())
		}
		rest = append(rest, msg.GetData()...)
	}
	if !bytes.Equal(rest, data[half:]) {
		t.Fatalf("resumed download: %d bytes, want %d", len(rest), len(data)-int(half))
	}

	// A registry watcher: first the snapshot with the aliases, then the changes
	// the next job makes.
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	mw, err := rc.WatchModels(wctx, &pb.WatchModelsRequest{Models: []string{"espcn-e2e"}})
	if err != nil {
		t.Fatal(err)
	}
	first, err := mw.Recv()
	if err != nil || len(first.GetSnapshot().GetModels()) != 1 || first.GetSnapshot().GetModels()[0].GetAliases()[pb.AliasProduction] != digest {
		t.Fatalf("WatchModels snapshot = %v, %v", first, err)
	}

	// The CLI subcommands against the same trainer: a second job, followed.
	var stdout, stderr bytes.Buffer
	conn := []string{"--trainer", p3.addr, "--token-file", filepath.Join(dir, "token")}
	code := cmdline.Train(context.Background(), append(conn, "--kind", "espcn", "--preset", "x2", "--dataset", "tiny",
		"--model", "espcn-e2e", "--id", "cli-job", "--steps", "8", "--batch", "4", "--checkpoint-every", "4",
		"--sample-every", "4", "--seed", "3", "--backend", e2eBackend(), "--samples", filepath.Join(t.TempDir(), "samples")), &stdout, &stderr)
	t.Logf("hirez train:\n%s%s", stdout.String(), stderr.String())
	if code != 0 || !strings.Contains(stdout.String(), "published espcn-e2e@sha256:") || !strings.Contains(stdout.String(), "checkpoint at step 4") {
		t.Fatalf("hirez train exit %d", code)
	}
	for _, want := range []pb.ModelEventType{pb.ModelEventType_MODEL_EVENT_TYPE_VERSION_CREATED, pb.ModelEventType_MODEL_EVENT_TYPE_ALIAS_SET} {
		ev, err := mw.Recv()
		if err != nil || ev.GetEvent().GetType() != want {
			t.Fatalf("WatchModels event = %v, %v; want %v", ev, err, want)
		}
	}
	stdout.Reset()
	if code := cmdline.Models(context.Background(), append([]string{"list"}, conn...), &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "production=sha256:") {
		t.Fatalf("hirez models list exit %d:\n%s%s", code, stdout.String(), stderr.String())
	}
	t.Logf("hirez models list:\n%s", stdout.String())
	stdout.Reset()
	if code := cmdline.Jobs(context.Background(), append([]string{"list"}, conn...), &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "jobs/cli-job") {
		t.Fatalf("hirez jobs list exit %d:\n%s%s", code, stdout.String(), stderr.String())
	}
	t.Logf("hirez jobs list:\n%s", stdout.String())
	stdout.Reset()
	if code := cmdline.Jobs(context.Background(), append([]string{"resume", "cli-job"}, conn...), &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "FailedPrecondition") {
		t.Fatalf("hirez jobs resume of a succeeded job: exit %d, stderr %q", code, stderr.String())
	}

	// hirez models rm: refused while an alias points at the version; once the
	// candidate alias has moved back, the CLI job's version goes and the
	// watcher hears of it.
	cliJob, err := tc.GetJob(context.Background(), &pb.GetJobRequest{Name: "jobs/cli-job"})
	if err != nil {
		t.Fatal(err)
	}
	cliDigest := cliJob.GetJob().GetResult().GetVersion()
	stderr.Reset()
	if code := cmdline.Models(context.Background(), append([]string{"rm", "espcn-e2e@" + digest}, conn...), &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), `FailedPrecondition`) || !strings.Contains(stderr.String(), `alias "production"`) {
		t.Fatalf("hirez models rm of production: exit %d, stderr %q", code, stderr.String())
	}
	t.Logf("hirez models rm (production):\n%s", stderr.String())
	if code := cmdline.Models(context.Background(), append([]string{"rm", "espcn-e2e"}, conn...), &stdout, &stderr); code != 2 {
		t.Fatalf("hirez models rm without a digest: exit %d, want 2 (usage)", code)
	}
	if code := cmdline.Models(context.Background(), append([]string{"alias", "espcn-e2e", pb.AliasCandidate, digest}, conn...), &stdout, &stderr); code != 0 {
		t.Fatalf("hirez models alias: exit %d:\n%s", code, stderr.String())
	}
	stdout.Reset()
	if code := cmdline.Models(context.Background(), append([]string{"rm", "espcn-e2e@" + cliDigest}, conn...), &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "deleted espcn-e2e@"+cliDigest) {
		t.Fatalf("hirez models rm: exit %d:\n%s%s", code, stdout.String(), stderr.String())
	}
	t.Logf("hirez models rm:\n%s", stdout.String())
	for _, want := range []pb.ModelEventType{pb.ModelEventType_MODEL_EVENT_TYPE_ALIAS_SET, pb.ModelEventType_MODEL_EVENT_TYPE_VERSION_DELETED} {
		ev, err := mw.Recv()
		if err != nil || ev.GetEvent().GetType() != want {
			t.Fatalf("WatchModels event = %v, %v; want %v", ev, err, want)
		}
		if want == pb.ModelEventType_MODEL_EVENT_TYPE_VERSION_DELETED && ev.GetEvent().GetVersion() != cliDigest {
			t.Fatalf("VERSION_DELETED of %s, want %s", ev.GetEvent().GetVersion(), cliDigest)
		}
	}

	// hirez train --init-from: a warm start from production, pinned to its digest.
	stdout.Reset()
	code = cmdline.Train(context.Background(), append(conn, "--kind", "espcn", "--preset", "x2", "--dataset", "tiny",
		"--model", "espcn-warm", "--id", "warm-cli", "--steps", "1", "--batch", "4", "--seed", "3", "--backend", e2eBackend(),
		"--init-from", "espcn-e2e@production"), &stdout, &stderr)
	t.Logf("hirez train --init-from:\n%s%s", stdout.String(), stderr.String())
	if code != 0 || !strings.Contains(stdout.String(), "from espcn-e2e@"+digest) || !strings.Contains(stdout.String(), "published espcn-warm@sha256:") {
		t.Fatalf("hirez train --init-from exit %d", code)
	}

	// SIGTERM: a clean exit.
	if err := p3.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p3.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("trainer did not stop after SIGTERM")
	}
}
