package modelserver_test

import (
	"context"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/hirez-ml/hirez/platform/config"
	"github.com/hirez-ml/hirez/platform/hotswap"
	"github.com/hirez-ml/hirez/platform/modelserver"
	"github.com/hirez-ml/hirez/platform/server"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const serviceName = "hirez.v1.GeneratorService"

// events records, in order, what the binary closed and released.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) { e.mu.Lock(); defer e.mu.Unlock(); e.list = append(e.list, s) }

func (e *events) get() []string { e.mu.Lock(); defer e.mu.Unlock(); return slices.Clone(e.list) }

type fakeBackend struct{ ev *events }

func (b *fakeBackend) Name() string { return "fake" }
func (b *fakeBackend) Close() error { b.ev.add("close backend"); return nil }

// labels is the served service: ListLabels answers the content of the served
// model file; a request for the model named "block" waits for unblock first.
type labels struct {
	pb.UnimplementedGeneratorServiceServer
	holder  *hotswap.Holder[string]
	ev      *events
	entered chan struct{}
	unblock chan struct{}
}

func (l *labels) ListLabels(_ context.Context, req *pb.ListLabelsRequest) (*pb.ListLabelsResponse, error) {
	ref, err := l.holder.Acquire()
	if err != nil {
		return nil, err
	}
	defer ref.Release()
	if req.GetModel().GetName() == "block" {
		l.entered <- struct{}{}
		<-l.unblock
		l.ev.add("answered blocked call")
	}
	return &pb.ListLabelsResponse{Labels: []string{ref.Value}}, nil
}

func (l *labels) Close(context.Context) error { l.ev.add("close service"); return nil }

// fixture is a Spec whose parts record what happens to them.
type fixture struct {
	ev      events
	svc     *labels
	deps    modelserver.Deps[string]
	own     *string // the service's own --own flag
	flags   []string
	logs    *observer.ObservedLogs
	startFn func(modelserver.Deps[string]) error // replaces Start's body when set
}

func (f *fixture) spec(opts ...server.Option) modelserver.Spec[*fakeBackend, string] {
	core, logs := observer.New(zapcore.InfoLevel)
	f.logs = logs
	var fs *flag.FlagSet
	return modelserver.Spec[*fakeBackend, string]{
		Name: "test", GRPCAddr: ":0", What: "a test model",
		Service: serviceName, Stage: "test",
		Backends: "fake",
		OpenBackend: func(name string) (*fakeBackend, error) {
			if name != "" && name != "fake" {
				return nil, errors.New("no such backend")
			}
			f.ev.add("open backend")
			return &fakeBackend{ev: &f.ev}, nil
		},
		Load: func(*fakeBackend) func(context.Context, string, []byte) (string, error) {
			return func(_ context.Context, _ string, data []byte) (string, error) {
				if string(data) == "broken" {
					return "", errors.New("broken weights")
				}
				return string(data), nil
			}
		},
		Release:  func(v string) { f.ev.add("release " + v) },
		Describe: func(v *hotswap.Version[string]) string { return "model " + v.Value },
		Flags: func(set *flag.FlagSet) {
			fs = set
			f.own = set.String("own", "ok", "the service's own flag")
		},
		Validate: func() error {
			fs.VisitAll(func(fl *flag.Flag) { f.flags = append(f.flags, fl.Name) })
			if *f.own == "bad" {
				return errors.New("--own: bad")
			}
			return nil
		},
		Fields:        func() []zap.Field { return []zap.Field{zap.String("own", *f.own)} },
		ServerOptions: opts,
		LogOptions: []zap.Option{zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return zapcore.NewTee(c, core)
		})},
		Start: func(d modelserver.Deps[string]) (modelserver.Service, error) {
			f.deps = d
			if f.startFn != nil {
				if err := f.startFn(d); err != nil {
					return nil, err
				}
			}
			f.svc = &labels{holder: d.Holder, ev: &f.ev, entered: make(chan struct{}), unblock: make(chan struct{})}
			pb.RegisterGeneratorServiceServer(d.Server, f.svc)
			return f.svc, nil
		},
	}
}

func writeModel(t *testing.T, dir, name, content string, mtime time.Time) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServesSwapsAndDrains runs a real server on 127.0.0.1:0 from a model
// directory: NOT_SERVING until the model loads, a new file is swapped in and
// the old version released, and on shutdown health fails during the drain
// delay, the call in flight finishes, and only then are the service, the
// model and the backend closed, in that order.
func TestServesSwapsAndDrains(t *testing.T) {
	dir := t.TempDir()
	start := time.Now().Add(-time.Hour)
	writeModel(t, dir, "v1.safetensors", "v1", start)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	spec := f.spec(server.WithListener(lis))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() {
		runErr <- spec.Run(ctx, []string{"--model", dir, "--model-poll-interval", "10ms", "--metrics-addr", "",
			"--max-batch", "3", "--drain-delay", "300ms", "--shutdown-timeout", "5s", "--own", "mine", "--log-level", "warn"})
	}()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	gc := pb.NewGeneratorServiceClient(conn)
	serving := func(service string) bool {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		defer ccancel()
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: service})
		return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
	}
	served := func() string {
		resp, err := gc.ListLabels(ctx, &pb.ListLabelsRequest{})
		if err != nil {
			return err.Error()
		}
		return strings.Join(resp.GetLabels(), ",")
	}
	eventually(t, "SERVING", func() bool { return serving(serviceName) && serving("") })
	if got := served(); got != "v1" {
		t.Fatalf("served %q, want v1", got)
	}
	if f.deps.Batch.MaxBatch != 3 || f.deps.Observer == nil || f.deps.Logger == nil || f.deps.Server == nil {
		t.Errorf("Start got batch %+v, observer %v, logger %v, server %v; want --max-batch 3 and the rest set",
			f.deps.Batch, f.deps.Observer, f.deps.Logger, f.deps.Server)
	}

	writeModel(t, dir, "v2.safetensors", "v2", start.Add(time.Minute))
	eventually(t, "v2 served", func() bool { return served() == "v2" })
	eventually(t, "v1 released", func() bool { return slices.Contains(f.ev.get(), "release v1") })

	answer := make(chan string, 1)
	go func() {
		resp, err := gc.ListLabels(context.Background(), &pb.ListLabelsRequest{Model: &pb.ModelRef{Name: "block"}})
		if err != nil {
			answer <- err.Error()
			return
		}
		answer <- strings.Join(resp.GetLabels(), ",")
	}()
	<-f.svc.entered
	cancel() // as SIGTERM
	// The drain delay (300 ms) keeps the server answering, NOT_SERVING.
	eventually(t, "NOT_SERVING in the drain delay", func() bool {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		defer ccancel()
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING
	})
	time.Sleep(400 * time.Millisecond) // past the drain delay: GracefulStop waits for the call
	select {
	case err := <-runErr:
		t.Fatalf("Run returned %v with a call in flight", err)
	default:
	}
	if ev := f.ev.get(); slices.Contains(ev, "close service") {
		t.Fatalf("service closed with a call in flight: %q", ev)
	}
	close(f.svc.unblock)
	if got := <-answer; got != "v2" {
		t.Errorf("call in flight at shutdown: %q, want v2", got)
	}
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}

	wantTail := []string{"answered blocked call", "close service", "release v2", "close backend"}
	if ev := f.ev.get(); len(ev) < len(wantTail) || !slices.Equal(ev[len(ev)-len(wantTail):], wantTail) {
		t.Errorf("events %q, want them to end %q", ev, wantTail)
	}

	loaded := f.logs.FilterMessage("model loaded").AllUntimed()
	if len(loaded) != 2 || loaded[0].ContextMap()["model"] != "model v1" ||
		loaded[0].ContextMap()["path"] != filepath.Join(dir, "v1.safetensors") || loaded[1].ContextMap()["model"] != "model v2" {
		t.Errorf("model loaded lines: %+v", loaded)
	}
	starting := f.logs.FilterMessage("starting").AllUntimed()
	if len(starting) != 1 {
		t.Fatalf("starting lines: %+v", starting)
	}
	fields := starting[0].ContextMap()
	for k, want := range map[string]any{"model": dir, "backend": "fake", "max_batch": int64(3), "queue_size": int64(64), "own": "mine"} {
		if fields[k] != want {
			t.Errorf("starting line %s = %v (%T), want %v", k, fields[k], fields[k], want)
		}
	}
}

// TestUsage: every flag the docs and manifests name is there, and each
// mistake is a usage error (exit status 2) found before anything is opened,
// except a bad --backend, found when it is opened; a failing Start is not a
// usage error and still closes the backend.
func TestUsage(t *testing.T) {
	model := filepath.Join(t.TempDir(), "m.safetensors")
	writeModel(t, filepath.Dir(model), "m.safetensors", "m", time.Now())

	var f fixture
	_ = f.spec().Run(context.Background(), []string{"--model", model, "--own", "bad"})
	for _, name := range []string{"grpc-addr", "metrics-addr", "log-format", "log-level", "shutdown-timeout", "drain-delay",
		"backend", "max-batch", "max-wait", "queue-size", "model", "model-poll-interval",
		"registry", "model-name", "model-alias", "model-cache", "model-cache-keep", "own"} {
		if !slices.Contains(f.flags, name) {
			t.Errorf("no --%s flag (have %q)", name, f.flags)
		}
	}

	for _, tc := range []struct {
		name string
		args []string
		want string // in the error
	}{
		{"unknown flag", []string{"--nope"}, "nope"},
		{"no model", nil, "--model"},
		{"model and registry", []string{"--model", model, "--registry", "r:1"}, "alternatives"},
		{"batching", []string{"--model", model, "--max-batch", "0"}, "max batch"},
		{"own flag", []string{"--model", model, "--own", "bad"}, "--own: bad"},
		{"backend", []string{"--model", model, "--backend", "gpu9"}, "--backend: no such backend"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f fixture
			err := f.spec().Run(context.Background(), append(tc.args, "--log-level", "error"))
			if _, ok := errors.AsType[*config.UsageError](err); !ok || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v; want a usage error with %q", err, tc.want)
			}
			if ev := f.ev.get(); len(ev) != 0 {
				t.Errorf("events %q, want none", ev)
			}
		})
	}

	t.Run("start fails", func(t *testing.T) {
		f := fixture{startFn: func(modelserver.Deps[string]) error { return errors.New("boom") }}
		err := f.spec().Run(context.Background(), []string{"--model", model, "--metrics-addr", "", "--log-level", "error"})
		if _, usage := errors.AsType[*config.UsageError](err); err == nil || usage || err.Error() != "boom" {
			t.Fatalf("Run: %v; want boom, not a usage error", err)
		}
		if ev := f.ev.get(); !slices.Equal(ev, []string{"open backend", "close backend"}) {
			t.Errorf("events %q, want the backend opened and closed", ev)
		}
	})
}
