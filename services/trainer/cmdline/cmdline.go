// Package cmdline holds the trainer's subcommands of the hirez CLI: "hirez
// train" (create a job and follow it), "hirez jobs" (list, get, watch, cancel,
// resume) and "hirez models" (list, versions, get, promote, alias, download,
// rm). Commands is their table, which the hirez dispatcher (cli/internal/app)
// mounts; Train, Jobs and Models run them on their own and return the exit
// code (0 ok, 1 the call failed or the job did not succeed, 2 bad usage). Help
// flags and unknown subcommands follow the rules of package subcmd.
package cmdline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/engine/atomicfile"
	"github.com/hirez-ml/hirez/platform/client"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
	"github.com/hirez-ml/hirez/services/trainer/cmdline/subcmd"
)

// DefaultTarget is the trainer address when neither --trainer nor HIREZ_TRAINER is set.
const DefaultTarget = "localhost:9003"

// ErrUsage is matched (errors.Is) by every error about how a command was
// called. It is subcmd's, so the hirez dispatcher recognises these too.
var ErrUsage = subcmd.ErrUsage

// RunFunc runs a leaf command; args are those after its name. Usage mistakes
// match ErrUsage; gRPC failures read "<Code>: <message>".
type RunFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Command is one of the trainer's commands: a leaf (Run) or a group (Subs).
type Command = subcmd.Command[RunFunc]

// Commands lists the trainer's commands: train, and the groups jobs and models.
func Commands() []Command {
	return []Command{
		{Name: "train", Summary: "create a training job on the trainer and follow it (--detach to return at once)", Run: pretty(train)},
		{Name: "jobs", Summary: "list, get, watch, cancel or resume the trainer's jobs", Subs: []Command{
			{Name: "list", Summary: "list the jobs, newest first (--all: every page)", Run: pretty(jobsList)},
			{Name: "get", Summary: "show one job", Run: pretty(jobsGet)},
			{Name: "watch", Summary: "follow a job until it ends", Run: pretty(jobsWatch)},
			{Name: "cancel", Summary: "ask a queued, running or interrupted job to stop", Run: pretty(jobsChange("cancel", cancelJob))},
			{Name: "resume", Summary: "queue an interrupted, failed or cancelled job again, from its latest checkpoint", Run: pretty(jobsChange("resume", resumeJob))},
		}},
		{Name: "models", Summary: "list, inspect, promote, alias, download or delete (rm) registry models", Subs: []Command{
			{Name: "list", Summary: "list the registry's models and their aliases", Run: pretty(modelsList)},
			{Name: "versions", Summary: "list a model's versions", Run: pretty(modelsVersions)},
			{Name: "get", Summary: "show one version", Run: pretty(modelsGet)},
			{Name: "promote", Summary: "point production at a version after the canary check (--force: despite it)", Run: pretty(modelsPromote)},
			{Name: "alias", Summary: "point an alias at a version, without a check", Run: pretty(modelsAlias)},
			{Name: "download", Summary: "download a version's weights, sha256 verified", Run: pretty(modelsDownload)},
			{Name: "rm", Summary: "delete a version no alias points at", Run: pretty(modelsRm)},
		}},
	}
}

// Train runs "hirez train": create a job and follow it until it ends.
func Train(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, "train", args, stdout, stderr)
}

// Jobs runs "hirez jobs list|get|watch|cancel|resume".
func Jobs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, "jobs", args, stdout, stderr)
}

// Models runs "hirez models list|versions|get|promote|alias|download|rm".
func Models(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, "models", args, stdout, stderr)
}

// run runs "hirez <name> args…" from Commands and returns the exit code.
func run(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	c, path, rest, err := subcmd.Find("hirez", Commands(), append([]string{name}, args...), stderr)
	if err == nil {
		err = c.Run(ctx, rest, stdout, stderr)
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return 1
	}
}

// pretty turns gRPC status errors into "<Code>: <message>".
func pretty(run RunFunc) RunFunc {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		err := run(ctx, args, stdout, stderr)
		if s, ok := status.FromError(err); ok && err != nil {
			return fmt.Errorf("%s: %s", s.Code(), s.Message())
		}
		return err
	}
}

// conn holds the connection flags every subcommand shares.
type conn struct {
	target, tokenFile, ca, cert, key string
}

func (c *conn) register(fs *flag.FlagSet) {
	fs.StringVar(&c.target, "trainer", envOr("HIREZ_TRAINER", DefaultTarget), "trainer gRPC address (env HIREZ_TRAINER)")
	fs.StringVar(&c.tokenFile, "token-file", os.Getenv("HIREZ_ADMIN_TOKEN_FILE"), "admin bearer token file for writes (env HIREZ_ADMIN_TOKEN_FILE)")
	fs.StringVar(&c.ca, "tls-ca", "", "verify the trainer's TLS certificate against this CA (enables TLS)")
	fs.StringVar(&c.cert, "tls-cert", "", "client certificate for mTLS")
	fs.StringVar(&c.key, "tls-key", "", "client key for mTLS")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (c *conn) dial() (*grpc.ClientConn, error) {
	opts := []client.Option{client.WithMaxMsgSize(pb.MaxMessageBytes, pb.MaxMessageBytes)}
	if c.ca != "" || c.cert != "" {
		opts = append(opts, client.WithTLS(client.TLS{CA: c.ca, Cert: c.cert, Key: c.key}))
	}
	return client.Dial(c.target, opts...)
}

// writeCtx adds the bearer token for calls that change state.
func (c *conn) writeCtx(ctx context.Context) (context.Context, error) {
	if c.tokenFile == "" {
		return ctx, nil
	}
	b, err := os.ReadFile(c.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("--token-file: %w", err)
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(b))), nil
}

// flags are a leaf's FlagSet, with the connection flags every leaf shares, and
// the positional arguments it takes.
type flags struct {
	*flag.FlagSet
	conn
	args string // the positional arguments as usage shows them, one word each ("<job>")
}

// newFlags returns the flags of the leaf path, which takes the positional
// arguments args ("" for none).
func newFlags(path, args string, stderr io.Writer) *flags {
	f := &flags{args: args}
	f.FlagSet = subcmd.NewFlags(path, strings.TrimSpace("[flags] "+args), stderr)
	f.register(f.FlagSet)
	return f
}

// parse parses args, allowing flags after positional arguments too
// ("hirez jobs resume job-1 --trainer host:9003"), and checks that the
// positional ones, left in Args(), are as many as f.args names.
func (f *flags) parse(args []string) error {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return subcmd.Usagef("%v", err)
		}
		if f.NArg() == 0 {
			break
		}
		pos = append(pos, f.Arg(0))
		args = f.Args()[1:]
	}
	if err := f.Parse(append([]string{"--"}, pos...)); err != nil {
		return subcmd.Usagef("%v", err)
	}
	switch want := len(strings.Fields(f.args)); {
	case f.NArg() == want:
		return nil
	case want == 0:
		return subcmd.Usagef("unexpected arguments %q", f.Args())
	case f.NArg() == 0:
		return subcmd.Usagef("missing %s", f.args)
	default:
		return subcmd.Usagef("want %s, got %q", f.args, f.Args())
	}
}

// open parses args and dials the trainer.
func (f *flags) open(args []string) (*grpc.ClientConn, error) {
	if err := f.parse(args); err != nil {
		return nil, err
	}
	return f.dial()
}

func jobName(s string) string {
	if strings.HasPrefix(s, "jobs/") {
		return s
	}
	return "jobs/" + s
}

func shortState(s pb.JobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATE_"))
}

var kinds = map[string]pb.ModelKind{
	"dcgan": pb.ModelKind_MODEL_KIND_DCGAN_GENERATOR, "generator": pb.ModelKind_MODEL_KIND_DCGAN_GENERATOR,
	"upsampler": pb.ModelKind_MODEL_KIND_UPSAMPLER, "srcnn": pb.ModelKind_MODEL_KIND_SRCNN, "espcn": pb.ModelKind_MODEL_KIND_ESPCN,
}

var losses = map[string]pb.Loss{"": pb.Loss_LOSS_UNSPECIFIED, "bce": pb.Loss_LOSS_BCE, "hinge": pb.Loss_LOSS_HINGE, "mse": pb.Loss_LOSS_MSE}

func train(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("hirez train", "", stderr)
	kind := f.String("kind", "dcgan", "what to train: dcgan, upsampler, srcnn, espcn")
	preset := f.String("preset", "stable", "preset: study or stable (dcgan, upsampler); study or classic (srcnn); x2 (espcn)")
	dataset := f.String("dataset", "", "dataset name or directory relative to the trainer's --data-dir (required)")
	model := f.String("model", "", "registry name to publish under (required)")
	id := f.String("id", "", "job id (makes a retry idempotent); empty = server-chosen")
	size := f.Int("size", 0, "training resolution (0 = preset's)")
	steps := f.Int64("steps", 0, "optimizer steps (or --epochs)")
	epochs := f.Int("epochs", 0, "epochs (or --steps)")
	batch := f.Int("batch", 0, "batch size (0 = preset's)")
	lr := f.Float64("lr", 0, "generator (or network) learning rate (0 = preset's)")
	lrD := f.Float64("lr-d", 0, "discriminator learning rate (0 = preset's)")
	lossName := f.String("loss", "", "bce, hinge or mse (empty = preset's)")
	ckpt := f.Int64("checkpoint-every", 0, "steps between checkpoints (0 = preset's)")
	sample := f.Int64("sample-every", 0, "steps between sample grids (0 = preset's)")
	backend := f.String("backend", "", "engine backend: ref or cpu (empty = trainer's default; a cuda backend is planned, not available)")
	seed := f.Int64("seed", 0, "seed (0 = chosen by the trainer)")
	detach := f.Bool("detach", false, "print the job and return without watching it")
	samples := f.String("samples", "", "write sample grids into this directory while watching")
	initFrom := f.String("init-from", "", "start from a registry version's weights: <model>[@version|alias] (same kind and preset)")
	if err := f.parse(args); err != nil {
		return err
	}
	k, ok := kinds[*kind]
	if !ok {
		return subcmd.Usagef("--kind %q: want dcgan, upsampler, srcnn or espcn", *kind)
	}
	l, ok := losses[*lossName]
	if !ok {
		return subcmd.Usagef("--loss %q: want bce, hinge or mse", *lossName)
	}
	var from *pb.ModelRef
	if *initFrom != "" {
		n, v, _ := strings.Cut(*initFrom, "@")
		from = &pb.ModelRef{Name: n, Version: v}
	}
	cc, err := f.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	tc := pb.NewTrainerServiceClient(cc)
	wctx, err := f.writeCtx(ctx)
	if err != nil {
		return err
	}
	resp, err := tc.CreateJob(wctx, &pb.CreateJobRequest{JobId: *id, Spec: &pb.JobSpec{
		ModelKind: k, Preset: *preset, Dataset: *dataset, ImageSize: int32(*size), Backend: *backend,
		ModelName: *model, Seed: *seed, InitFrom: from,
		Hyperparameters: &pb.Hyperparameters{
			Steps: *steps, Epochs: int32(*epochs), BatchSize: int32(*batch),
			GeneratorLearningRate: float32(*lr), DiscriminatorLearningRate: float32(*lrD), Loss: l,
			CheckpointIntervalSteps: *ckpt, SampleIntervalSteps: *sample,
		},
	}})
	if err != nil {
		return err
	}
	j := resp.GetJob()
	if src := j.GetSpec().GetInitFrom(); src != nil {
		fmt.Fprintf(stdout, "created %s (%s, seed %d, from %s@%s)\n", j.GetName(), shortState(j.GetState()), j.GetSpec().GetSeed(), src.GetName(), src.GetVersion())
	} else {
		fmt.Fprintf(stdout, "created %s (%s, seed %d)\n", j.GetName(), shortState(j.GetState()), j.GetSpec().GetSeed())
	}
	if *detach {
		return nil
	}
	return watch(ctx, tc, j.GetName(), *samples, stdout)
}

// watch follows a job and prints one line per event; it fails unless the job
// succeeds.
func watch(ctx context.Context, tc pb.TrainerServiceClient, name, samplesDir string, stdout io.Writer) error {
	stream, err := tc.WatchJob(ctx, &pb.WatchJobRequest{Name: name})
	if err != nil {
		return err
	}
	var last *pb.Job
	lastLine := time.Time{}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		switch e := ev.GetEvent().(type) {
		case *pb.WatchJobResponse_Snapshot:
			last = e.Snapshot
			fmt.Fprintf(stdout, "%s: %s, %s\n", name, shortState(last.GetState()), progressLine(last.GetProgress()))
		case *pb.WatchJobResponse_Progress:
			if time.Since(lastLine) < time.Second {
				continue // one progress line a second is plenty for a terminal
			}
			lastLine = time.Now()
			fmt.Fprintln(stdout, progressLine(e.Progress))
		case *pb.WatchJobResponse_Sample:
			line := fmt.Sprintf("sample grid at step %d (%d×%d, %d bytes)", e.Sample.GetStep(), e.Sample.GetRows(), e.Sample.GetColumns(), len(e.Sample.GetPng()))
			if samplesDir != "" {
				p := filepath.Join(samplesDir, fmt.Sprintf("step-%09d.png", e.Sample.GetStep()))
				if err := os.MkdirAll(samplesDir, 0o755); err == nil {
					if err := atomicfile.WriteBytes(p, e.Sample.GetPng()); err == nil {
						line += " → " + p
					}
				}
			}
			fmt.Fprintln(stdout, line)
		case *pb.WatchJobResponse_Checkpoint:
			fmt.Fprintf(stdout, "checkpoint at step %d: %s\n", e.Checkpoint.GetStep(), e.Checkpoint.GetPath())
		case *pb.WatchJobResponse_StateChange:
			sc := e.StateChange
			fmt.Fprintf(stdout, "%s → %s: %s\n", shortState(sc.GetPreviousState()), shortState(sc.GetState()), sc.GetReason())
		}
	}
	got, err := tc.GetJob(ctx, &pb.GetJobRequest{Name: name})
	if err != nil {
		return err
	}
	last = got.GetJob()
	switch last.GetState() {
	case pb.JobState_JOB_STATE_SUCCEEDED:
		r := last.GetResult()
		fmt.Fprintf(stdout, "published %s@%s (alias candidate); promote with: hirez models promote %s\n", r.GetName(), r.GetVersion(), r.GetName())
		return nil
	default:
		return fmt.Errorf("%s ended %s: %s", name, shortState(last.GetState()), last.GetFailureReason())
	}
}

func progressLine(p *pb.JobProgress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "step %d", p.GetStep())
	if p.GetTotalSteps() > 0 {
		fmt.Fprintf(&b, "/%d", p.GetTotalSteps())
	}
	fmt.Fprintf(&b, " epoch %d", p.GetEpoch())
	keys := make([]string, 0, len(p.GetLosses()))
	for k := range p.GetLosses() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%.4f", k, p.GetLosses()[k])
	}
	if p.GetImagesPerSecond() > 0 {
		fmt.Fprintf(&b, " %.1f img/s", p.GetImagesPerSecond())
	}
	if p.GetEta() != nil {
		fmt.Fprintf(&b, " eta %s", p.GetEta().AsDuration().Round(time.Second))
	}
	return b.String()
}

func jobsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("hirez jobs list", "", stderr)
	all := f.Bool("all", false, "every page, not just the first")
	cc, err := f.open(args)
	if err != nil {
		return err
	}
	defer cc.Close()
	tc := pb.NewTrainerServiceClient(cc)
	tok := ""
	for {
		resp, err := tc.ListJobs(ctx, &pb.ListJobsRequest{PageToken: tok})
		if err != nil {
			return err
		}
		if tok == "" {
			fmt.Fprintf(stdout, "%-24s %-12s %-10s %-20s %s\n", "JOB", "STATE", "STEP", "MODEL", "RESULT")
		}
		for _, j := range resp.GetJobs() {
			res := ""
			if r := j.GetResult(); r != nil {
				res = r.GetVersion()
			}
			fmt.Fprintf(stdout, "%-24s %-12s %-10s %-20s %s\n", j.GetName(), shortState(j.GetState()),
				fmt.Sprintf("%d/%d", j.GetProgress().GetStep(), j.GetProgress().GetTotalSteps()), j.GetSpec().GetModelName(), res)
		}
		tok = resp.GetNextPageToken()
		if tok == "" || !*all {
			return nil
		}
	}
}

func jobsGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("hirez jobs get", "<job>", stderr)
	cc, err := f.open(args)
	if err != nil {
		return err
	}
	defer cc.Close()
	resp, err := pb.NewTrainerServiceClient(cc).GetJob(ctx, &pb.GetJobRequest{Name: jobName(f.Arg(0))})
	if err != nil {
		return err
	}
	printJob(stdout, resp.GetJob())
	return nil
}

func jobsWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("hirez jobs watch", "<job>", stderr)
	samples := f.String("samples", "", "write sample grids into this directory")
	cc, err := f.open(args)
	if err != nil {
		return err
	}
	defer cc.Close()
	return watch(ctx, pb.NewTrainerServiceClient(cc), jobName(f.Arg(0)), *samples, stdout)
}

// jobsChange makes "hirez jobs <sub> <job>" for a call that changes the job's
// state and returns it (cancel, resume).
func jobsChange(sub string, call func(context.Context, pb.TrainerServiceClient, string) (*pb.Job, error)) RunFunc {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		f := newFlags("hirez jobs "+sub, "<job>", stderr)
		cc, err := f.open(args)
		if err != nil {
			return err
		}
		defer cc.Close()
		wctx, err := f.writeCtx(ctx)
		if err != nil {
			return err
		}
		j, err := call(wctx, pb.NewTrainerServiceClient(cc), jobName(f.Arg(0)))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s\n", j.GetName(), shortState(j.GetState()))
		return nil
	}
}

func cancelJob(ctx context.Context, tc pb.TrainerServiceClient, name string) (*pb.Job, error) {
	resp, err := tc.CancelJob(ctx, &pb.CancelJobRequest{Name: name})
	return resp.GetJob(), err
}

func resumeJob(ctx context.Context, tc pb.TrainerServiceClient, name string) (*pb.Job, error) {
	resp, err := tc.ResumeJob(ctx, &pb.ResumeJobRequest{Name: name})
	return resp.GetJob(), err
}

func printJob(w io.Writer, j *pb.Job) {
	s := j.GetSpec()
	fmt.Fprintf(w, "name:       %s\nstate:      %s\n", j.GetName(), shortState(j.GetState()))
	if j.GetFailureReason() != "" {
		fmt.Fprintf(w, "reason:     %s\n", j.GetFailureReason())
	}
	fmt.Fprintf(w, "model:      %s (%s, preset %s, dataset %s, seed %d)\n", s.GetModelName(), s.GetModelKind(), s.GetPreset(), s.GetDataset(), s.GetSeed())
	fmt.Fprintf(w, "progress:   %s\nattempts:   %d\n", progressLine(j.GetProgress()), j.GetAttempts())
	if c := j.GetLatestCheckpoint(); c != nil {
		fmt.Fprintf(w, "checkpoint: step %d %s\n", c.GetStep(), c.GetPath())
	}
	if r := j.GetResult(); r != nil {
		fmt.Fprintf(w, "result:     %s@%s\n", r.GetName(), r.GetVersion())
	}
}

// ref reads <model>[@version|alias].
func ref(s string) *pb.ModelRef {
	n, v, _ := strings.Cut(s, "@")
	return &pb.ModelRef{Name: n, Version: v}
}

func modelsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("hirez models list", "", stderr)
	cc, err := f.open(args)
	if err != nil {
		return err
	}
	defer cc.Close()
	resp, err := pb.NewModelRegistryServiceClient(cc).ListModels(ctx, &pb.ListModelsRequest{})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-24s %-26s %-9s %s\n", "MODEL", "KIND", "VERSIONS", "ALIASES")
	for _, m := range resp.GetModels() {
		var al []string
		for a, d := range m.GetAliases() {
			al = append(al, a+"="+short(d))
		}
		sort.Strings(al)
		fmt.Fprintf(stdout, "%-24s %-26s %-9d %s\n", m.GetName(), m.GetKind(), m.GetVersionCount(), strings.Join(al, " "))
	}
	return nil
}

func modelsVersions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("hirez models versions", "<model>", stderr)
	cc, err := f.open(args)
	if err != nil {
		return err
	}
	defer cc.Close()
	resp, err := pb.NewModelRegistryServiceClient(cc).ListModelVersions(ctx, &pb.ListModelVersionsRequest{Model: f.Arg(0)})
	if err != nil {
		return err
	}
	for _, v := range resp.GetVersions() {
		fmt.Fprintf(stdout, "%s %8d bytes %s %v %s\n", v.GetRef().GetVersion(), v.GetSizeBytes(), v.GetSourceJob(), v.GetAliases(), fmtMetrics(v.GetMetrics()))
	}
	return nil
}

func modelsGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("hirez models get", "<model>[@version|alias]", stderr)
	cc, err := f.open(args)
	if err != nil {
		return err
	}
	defer cc.Close()
	resp, err := pb.NewModelRegistryServiceClient(cc).GetModelVersion(ctx, &pb.GetModelVersionRequest{Ref: ref(f.Arg(0))})
	if err != nil {
		return err
	}
	v := resp.GetVersion()
	fmt.Fprintf(stdout, "%s@%s\nkind: %s preset: %s size: %d image_size: %d aliases: %v\nsource: %s metrics: %s\n",
		v.GetRef().GetName(), v.GetRef().GetVersion(), v.GetKind(), v.GetPreset(), v.GetSizeBytes(), v.GetImageSize(), v.GetAliases(), v.GetSourceJob(), fmtMetrics(v.GetMetrics()))
	return nil
}

func modelsPromote(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("hirez models promote", "<model>[@version|alias]", stderr)
	force := f.Bool("force", false, "promote even when the canary check fails")
	cc, err := f.open(args)
	if err != nil {
		return err
	}
	defer cc.Close()
	wctx, err := f.writeCtx(ctx)
	if err != nil {
		return err
	}
	r := ref(f.Arg(0))
	resp, err := pb.NewModelRegistryServiceClient(cc).PromoteModel(wctx, &pb.PromoteModelRequest{Model: r.GetName(), Version: r.GetVersion(), Force: *force})
	if err != nil {
		return err
	}
	cn := resp.GetCanary()
	old := "none"
	if cn.OldValue != nil {
		old = fmt.Sprintf("%.4f", cn.GetOldValue())
	}
	fmt.Fprintf(stdout, "canary %s: new %.4f, production %s (passed: %v)\n", cn.GetMetric(), cn.GetNewValue(), old, cn.GetPassed())
	if !resp.GetPromoted() {
		return fmt.Errorf("not promoted: %s", cn.GetRefusedReason())
	}
	fmt.Fprintf(stdout, "production → %s (was %s)\n", resp.GetVersion().GetRef().GetVersion(), orNone(resp.GetPreviousVersion()))
	return nil
}

func modelsAlias(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("hirez models alias", "<model> <alias> <sha256:digest>", stderr)
	cc, err := f.open(args)
	if err != nil {
		return err
	}
	defer cc.Close()
	wctx, err := f.writeCtx(ctx)
	if err != nil {
		return err
	}
	resp, err := pb.NewModelRegistryServiceClient(cc).SetAlias(wctx, &pb.SetAliasRequest{Model: f.Arg(0), Alias: f.Arg(1), Version: f.Arg(2)})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s → %s (was %s)\n", f.Arg(1), resp.GetVersion().GetRef().GetVersion(), orNone(resp.GetPreviousVersion()))
	return nil
}

func modelsDownload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("hirez models download", "<model>[@version|alias]", stderr)
	out := f.String("o", "", "output file (default <model>-<digest prefix>.safetensors)")
	cc, err := f.open(args)
	if err != nil {
		return err
	}
	defer cc.Close()
	path, digest, err := Download(ctx, pb.NewModelRegistryServiceClient(cc), ref(f.Arg(0)), *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%s, sha256 verified)\n", path, digest)
	return nil
}

func modelsRm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("hirez models rm", "<model>@<sha256:digest>", stderr)
	if err := f.parse(args); err != nil {
		return err
	}
	if !strings.Contains(f.Arg(0), "@") {
		return subcmd.Usagef("want <model>@<sha256:digest>, got %q", f.Arg(0))
	}
	cc, err := f.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	wctx, err := f.writeCtx(ctx)
	if err != nil {
		return err
	}
	resp, err := pb.NewModelRegistryServiceClient(cc).DeleteModelVersion(wctx, &pb.DeleteModelVersionRequest{Ref: ref(f.Arg(0))})
	if err != nil {
		return err
	}
	v := resp.GetVersion()
	fmt.Fprintf(stdout, "deleted %s@%s (%d bytes)\n", v.GetRef().GetName(), v.GetRef().GetVersion(), v.GetSizeBytes())
	return nil
}

// Download streams a model version into path (default
// <model>-<digest prefix>.safetensors), verifies the sha256 of the whole file,
// and writes it atomically. It returns the path and the version digest.
func Download(ctx context.Context, rc pb.ModelRegistryServiceClient, ref *pb.ModelRef, path string) (string, string, error) {
	stream, err := rc.DownloadModel(ctx, &pb.DownloadModelRequest{Ref: ref})
	if err != nil {
		return "", "", err
	}
	h := sha256.New()
	var data []byte
	var total int64
	var sum, digest string
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", "", err
		}
		if v := msg.GetVersion(); v != nil {
			digest = v.GetRef().GetVersion()
		}
		if msg.GetOffset() != int64(len(data)) {
			return "", "", fmt.Errorf("download: chunk at offset %d, expected %d", msg.GetOffset(), len(data))
		}
		data = append(data, msg.GetData()...)
		h.Write(msg.GetData())
		total, sum = msg.GetTotalSize(), msg.GetSha256()
	}
	if int64(len(data)) != total {
		return "", "", fmt.Errorf("download: got %d bytes, want %d", len(data), total)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return "", "", fmt.Errorf("download: sha256 %s does not match the server's %s", got, sum)
	}
	if path == "" {
		path = fmt.Sprintf("%s-%s.safetensors", ref.GetName(), sum[:12])
	}
	if err := atomicfile.WriteBytes(path, data); err != nil {
		return "", "", err
	}
	return path, digest, nil
}

func short(d string) string {
	if len(d) > len(pb.DigestPrefix)+12 {
		return d[:len(pb.DigestPrefix)+12]
	}
	return d
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func fmtMetrics(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%.4f", k, m[k]))
	}
	return strings.Join(parts, " ")
}
