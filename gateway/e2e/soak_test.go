package e2e

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hirez-ml/hirez/gateway/internal/soak"
)

// logWriter passes whole lines to t.Log.
type logWriter struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line) // not a whole line yet
			return len(p), nil
		}
		w.t.Log(strings.TrimSuffix(line, "\n"))
	}
}

// TestSoak runs the soak tool (make soak) for a short while against the
// stack scripts/up.sh starts: capacity with one client, then 4× that from 16
// clients for 20 s. It asserts what the design guarantees whatever the
// machine's speed: an admitted call fails for no reason but time (no
// RESOURCE_EXHAUSTED after admission, no UNAVAILABLE or INTERNAL: those are
// bugs), some requests get their images, and no serving process exits or
// passes its Kubernetes memory limit. Calls that ran out of time (the
// caller's deadline, or every hop timeout of an image) and the latency
// ratio depend on how loaded the machine is: they are goals that make soak
// judges and docs/serving.md reports, printed here, not asserted (on the
// 2-core dev machine under -race, loaded, one run in two had such a call).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30 s load test")
	}
	r := startUp(t, nil)
	r.next(t, `Ctrl-C stops the stack`, 60*time.Second)
	var procs []soak.Proc
	for _, m := range regexp.MustCompile(`(\S+) started \(pid (\d+)`).FindAllStringSubmatch(r.out.String(), -1) {
		pid, _ := strconv.Atoi(m[2])
		procs = append(procs, soak.Proc{Name: m[1], PID: pid})
	}
	if len(procs) != 4 {
		t.Fatalf("started %v, want a generator, two upscalers and a gateway", procs)
	}
	limits, err := soak.ReadLimits("../../k8s/base")
	if err != nil {
		t.Fatal(err)
	}
	mix, err := soak.ParseMix(soak.DefaultMix)
	if err != nil {
		t.Fatal(err)
	}
	cfg := soak.Defaults
	cfg.Gateway, cfg.Mix, cfg.Procs, cfg.Limits = r.gateway, mix, procs, limits
	cfg.Duration, cfg.Calibrate, cfg.Interval = 20*time.Second, 5*time.Second, 5*time.Second
	cfg.Clients, cfg.GiveUp = 16, 30*time.Second // past the longest retry hint (30 s): refused requests retry
	cfg.Out = &logWriter{t: t}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := soak.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for failure, n := range res.Failures {
		if strings.Contains(failure, ": DEADLINE_EXCEEDED: ") {
			t.Logf("goal missed, not asserted (time on a loaded machine): %d× %s", n, failure)
		} else {
			t.Errorf("%d× %s; want none: an admitted call may fail only for lack of time", n, failure)
		}
	}
	if res.OK == 0 {
		t.Errorf("no request got its images (codes %v)", res.Codes)
	}
	for _, m := range res.Memory {
		if m.Exited || m.Peak > m.Limit || m.Peak == 0 {
			t.Errorf("%s: peak RSS %d of a %d limit, exited %v", m.Name, m.Peak, m.Limit, m.Exited)
		}
	}
	t.Logf("latency: admitted p99 %v = %.2f× the unloaded p99 %v (the tool's goal ≤ %g×; not asserted here)",
		res.P99, res.LatencyRatio(), res.Unloaded.P99, res.Goal)
}
