// Package cmdline holds the trainer's subcommands of the hirez CLI: "hirez
// train" (create a job and follow it), "hirez jobs" (list, get, watch, cancel,
// resume) and "hirez models" (list, versions, get, promote, alias, download, rm).
// Each runner has the shape func(ctx, args, stdout, stderr) int (exit codes: 0
// ok, 1 the call failed or the job did not succeed, 2 bad usage); Commands
// lists error-returning forms for a dispatcher that prints errors itself.
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
)

// DefaultTarget is the trainer address when neither --trainer nor HIREZ_TRAINER is set.
const DefaultTarget = "localhost:9003"

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

// ErrUsage is matched (errors.Is) by every error about how a command was called.
var ErrUsage = errors.New("usage")

type usageError struct{ error }

func (usageError) Is(target error) bool { return target == ErrUsage }

// Command is one subcommand for a dispatcher (cli/internal/app).
type Command struct {
	Name    string
	Summary string
	// Run parses args (after the command name) and does the work. Usage
	// mistakes match ErrUsage; gRPC failures read "<Code>: <message>".
	Run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// Commands lists the trainer's subcommands: train, jobs, models.
func Commands() []Command {
	return []Command{
		{"train", "create a training job on the trainer and follow it (--detach to return at once)", pretty(train)},
		{"jobs", "list, get, watch, cancel or resume the trainer's jobs", pretty(jobs)},
		{"models", "list, inspect, promote, alias, download or delete (rm) registry models", pretty(models)},
	}
}

// pretty turns gRPC status errors into "<Code>: <message>".
func pretty(run func(context.Context, []string, io.Writer, io.Writer) error) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		err := run(ctx, args, stdout, stderr)
		if s, ok := status.FromError(err); ok && err != nil {
			return fmt.Errorf("%s: %s", s.Code(), s.Message())
		}
		return err
	}
}

// exit prints err and returns the exit code.
func exit(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "hirez:", err)
		return 2
	}
	if s, ok := status.FromError(err); ok {
		fmt.Fprintf(stderr, "hirez: %s: %s\n", s.Code(), s.Message())
		return 1
	}
	fmt.Fprintln(stderr, "hirez:", err)
	return 1
}

// parse parses args, allowing flags after positional arguments too
// ("hirez jobs resume job-1 --trainer host:9003"); the positional ones are left
// in fs.Args().
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageError{err}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
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

// Train runs "hirez train": create a job and follow it until it ends.
func Train(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return exit(stderr, train(ctx, args, stdout, stderr))
}

func train(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hirez train", flag.ContinueOnError)
	var c conn
	c.register(fs)
	kind := fs.String("kind", "dcgan", "what to train: dcgan, upsampler, srcnn, espcn")
	preset := fs.String("preset", "stable", "preset: study or stable (dcgan, upsampler); study or classic (srcnn); x2 (espcn)")
	dataset := fs.String("dataset", "", "dataset name or directory relative to the trainer's --data-dir (required)")
	model := fs.String("model", "", "registry name to publish under (required)")
	id := fs.String("id", "", "job id (makes a retry idempotent); empty = server-chosen")
	size := fs.Int("size", 0, "training resolution (0 = preset's)")
	steps := fs.Int64("steps", 0, "optimizer steps (or --epochs)")
	epochs := fs.Int("epochs", 0, "epochs (or --steps)")
	batch := fs.Int("batch", 0, "batch size (0 = preset's)")
	lr := fs.Float64("lr", 0, "generator (or network) learning rate (0 = preset's)")
	lrD := fs.Float64("lr-d", 0, "discriminator learning rate (0 = preset's)")
	lossName := fs.String("loss", "", "bce, hinge or mse (empty = preset's)")
	ckpt := fs.Int64("checkpoint-every", 0, "steps between checkpoints (0 = preset's)")
	sample := fs.Int64("sample-every", 0, "steps between sample grids (0 = preset's)")
	backend := fs.String("backend", "", "engine backend: ref, cpu, cuda (empty = trainer's default)")
	seed := fs.Int64("seed", 0, "seed (0 = chosen by the trainer)")
	detach := fs.Bool("detach", false, "print the job and return without watching it")
	samples := fs.String("samples", "", "write sample grids into this directory while watching")
	initFrom := fs.String("init-from", "", "start from a registry version's weights: <model>[@version|alias] (same kind and preset)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	k, ok := kinds[*kind]
	if !ok {
		return usageError{fmt.Errorf("--kind %q: want dcgan, upsampler, srcnn or espcn", *kind)}
	}
	l, ok := losses[*lossName]
	if !ok {
		return usageError{fmt.Errorf("--loss %q: want bce, hinge or mse", *lossName)}
	}
	var from *pb.ModelRef
	if *initFrom != "" {
		n, v, _ := strings.Cut(*initFrom, "@")
		from = &pb.ModelRef{Name: n, Version: v}
	}
	cc, err := c.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	tc := pb.NewTrainerServiceClient(cc)
	wctx, err := c.writeCtx(ctx)
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
	if f := j.GetSpec().GetInitFrom(); f != nil {
		fmt.Fprintf(stdout, "created %s (%s, seed %d, from %s@%s)\n", j.GetName(), shortState(j.GetState()), j.GetSpec().GetSeed(), f.GetName(), f.GetVersion())
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

// Jobs runs "hirez jobs list|get|watch|cancel|resume".
func Jobs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return exit(stderr, jobs(ctx, args, stdout, stderr))
}

func jobs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("want a subcommand: hirez jobs list|get|watch|cancel|resume [flags] [job]")}
	}
	sub := args[0]
	fs := flag.NewFlagSet("hirez jobs "+sub, flag.ContinueOnError)
	var c conn
	c.register(fs)
	all := fs.Bool("all", false, "list: every page")
	samples := fs.String("samples", "", "watch: write sample grids into this directory")
	if err := parse(fs, args[1:], stderr); err != nil {
		return err
	}
	cc, err := c.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	tc := pb.NewTrainerServiceClient(cc)
	needJob := func() (string, error) {
		if fs.NArg() != 1 {
			return "", usageError{fmt.Errorf("hirez jobs %s needs one job name", sub)}
		}
		return jobName(fs.Arg(0)), nil
	}
	switch sub {
	case "list":
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
	case "get":
		name, err := needJob()
		if err != nil {
			return err
		}
		resp, err := tc.GetJob(ctx, &pb.GetJobRequest{Name: name})
		if err != nil {
			return err
		}
		printJob(stdout, resp.GetJob())
		return nil
	case "watch":
		name, err := needJob()
		if err != nil {
			return err
		}
		return watch(ctx, tc, name, *samples, stdout)
	case "cancel", "resume":
		name, err := needJob()
		if err != nil {
			return err
		}
		wctx, err := c.writeCtx(ctx)
		if err != nil {
			return err
		}
		var j *pb.Job
		if sub == "cancel" {
			resp, err := tc.CancelJob(wctx, &pb.CancelJobRequest{Name: name})
			if err != nil {
				return err
			}
			j = resp.GetJob()
		} else {
			resp, err := tc.ResumeJob(wctx, &pb.ResumeJobRequest{Name: name})
			if err != nil {
				return err
			}
			j = resp.GetJob()
		}
		fmt.Fprintf(stdout, "%s: %s\n", j.GetName(), shortState(j.GetState()))
		return nil
	}
	return usageError{fmt.Errorf("unknown subcommand %q: want list, get, watch, cancel or resume", sub)}
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

// Models runs "hirez models list|versions|get|promote|alias|download|rm".
func Models(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return exit(stderr, models(ctx, args, stdout, stderr))
}

func models(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("want a subcommand: hirez models list|versions|get|promote|alias|download|rm [flags] [args]")}
	}
	sub := args[0]
	fs := flag.NewFlagSet("hirez models "+sub, flag.ContinueOnError)
	var c conn
	c.register(fs)
	force := fs.Bool("force", false, "promote: even when the canary check fails")
	out := fs.String("o", "", "download: output file (default <model>-<digest prefix>.safetensors)")
	if err := parse(fs, args[1:], stderr); err != nil {
		return err
	}
	cc, err := c.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	rc := pb.NewModelRegistryServiceClient(cc)
	arg := func(i int) string { return fs.Arg(i) }
	// name[@version]
	ref := func(s string) *pb.ModelRef {
		n, v, _ := strings.Cut(s, "@")
		return &pb.ModelRef{Name: n, Version: v}
	}
	switch sub {
	case "list":
		resp, err := rc.ListModels(ctx, &pb.ListModelsRequest{})
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
	case "versions":
		if fs.NArg() != 1 {
			return usageError{errors.New("hirez models versions <model>")}
		}
		resp, err := rc.ListModelVersions(ctx, &pb.ListModelVersionsRequest{Model: arg(0)})
		if err != nil {
			return err
		}
		for _, v := range resp.GetVersions() {
			fmt.Fprintf(stdout, "%s %8d bytes %s %v %s\n", v.GetRef().GetVersion(), v.GetSizeBytes(), v.GetSourceJob(), v.GetAliases(), fmtMetrics(v.GetMetrics()))
		}
		return nil
	case "get":
		if fs.NArg() != 1 {
			return usageError{errors.New("hirez models get <model>[@version|alias]")}
		}
		resp, err := rc.GetModelVersion(ctx, &pb.GetModelVersionRequest{Ref: ref(arg(0))})
		if err != nil {
			return err
		}
		v := resp.GetVersion()
		fmt.Fprintf(stdout, "%s@%s\nkind: %s preset: %s size: %d image_size: %d aliases: %v\nsource: %s metrics: %s\n",
			v.GetRef().GetName(), v.GetRef().GetVersion(), v.GetKind(), v.GetPreset(), v.GetSizeBytes(), v.GetImageSize(), v.GetAliases(), v.GetSourceJob(), fmtMetrics(v.GetMetrics()))
		return nil
	case "promote":
		if fs.NArg() != 1 {
			return usageError{errors.New("hirez models promote [--force] <model>[@version|alias]")}
		}
		r := ref(arg(0))
		wctx, err := c.writeCtx(ctx)
		if err != nil {
			return err
		}
		resp, err := rc.PromoteModel(wctx, &pb.PromoteModelRequest{Model: r.GetName(), Version: r.GetVersion(), Force: *force})
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
	case "alias":
		if fs.NArg() != 3 {
			return usageError{errors.New("hirez models alias <model> <alias> <sha256:digest>")}
		}
		wctx, err := c.writeCtx(ctx)
		if err != nil {
			return err
		}
		resp, err := rc.SetAlias(wctx, &pb.SetAliasRequest{Model: arg(0), Alias: arg(1), Version: arg(2)})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s → %s (was %s)\n", arg(1), resp.GetVersion().GetRef().GetVersion(), orNone(resp.GetPreviousVersion()))
		return nil
	case "download":
		if fs.NArg() != 1 {
			return usageError{errors.New("hirez models download [-o file] <model>[@version|alias]")}
		}
		path, digest, err := Download(ctx, rc, ref(arg(0)), *out)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s (%s, sha256 verified)\n", path, digest)
		return nil
	case "rm":
		if fs.NArg() != 1 || !strings.Contains(arg(0), "@") {
			return usageError{errors.New("hirez models rm <model>@<sha256:digest>")}
		}
		wctx, err := c.writeCtx(ctx)
		if err != nil {
			return err
		}
		resp, err := rc.DeleteModelVersion(wctx, &pb.DeleteModelVersionRequest{Ref: ref(arg(0))})
		if err != nil {
			return err
		}
		v := resp.GetVersion()
		fmt.Fprintf(stdout, "deleted %s@%s (%d bytes)\n", v.GetRef().GetName(), v.GetRef().GetVersion(), v.GetSizeBytes())
		return nil
	}
	return usageError{fmt.Errorf("unknown subcommand %q: want list, versions, get, promote, alias, download or rm", sub)}
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
