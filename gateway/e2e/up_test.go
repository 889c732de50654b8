package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hirez-ml/hirez/platform/servertest"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// upRun is one run of scripts/up.sh (make up) with the e2e models.
type upRun struct {
	cmd      *exec.Cmd
	out      *servertest.Buffer
	done     chan struct{}
	seen     int // output already matched by next
	gateway  string
	upscaler []string
}

var startedRE = regexp.MustCompile(`started \(pid (\d+)`)

// startUp runs scripts/up.sh on free loopback ports; upscalers are the
// upscaler addresses (free ones when nil). When the test ends the script and
// every server it started are killed, whatever state they are in.
func startUp(t *testing.T, upscalers []string) *upRun {
	t.Helper()
	// The tools scripts/up.sh needs besides the servers.
	buildOnDemand(t, "../../cli", "hirez")
	buildOnDemand(t, "..", "freeports")
	if upscalers == nil {
		upscalers = []string{servertest.FreeAddr(t), servertest.FreeAddr(t)}
	}
	r := &upRun{out: &servertest.Buffer{}, done: make(chan struct{}), gateway: servertest.FreeAddr(t), upscaler: upscalers}
	r.cmd = exec.Command("bash", "../../scripts/up.sh")
	r.cmd.Env = append(os.Environ(),
		"BIN_DIR="+binDir, "MODELS_DIR="+filepath.Dir(genModel), "OUT_DIR="+t.TempDir(),
		"GATEWAY_ADDR="+r.gateway, "HTTP_ADDR="+servertest.FreeAddr(t), "GENERATOR_ADDR="+servertest.FreeAddr(t),
		"UPSCALER_ADDRS="+strings.Join(upscalers, ","), "SHUTDOWN_TIMEOUT=10")
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	// Its own process group, so that cleanup can kill the script and its
	// helpers (the servers have sessions of their own: killed by pid).
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		for _, m := range startedRE.FindAllStringSubmatch(r.out.String(), -1) {
			if pid, err := strconv.Atoi(m[1]); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		<-r.done
		if t.Failed() {
			t.Logf("--- scripts/up.sh output:\n%s", r.out.String())
		}
	})
	return r
}

// next waits up to timeout for output after the last match to match re and
// returns the submatches.
func (r *upRun) next(t *testing.T, re string, timeout time.Duration) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		out := r.out.String()
		if loc := rx.FindStringSubmatchIndex(out[r.seen:]); loc != nil {
			m := rx.FindStringSubmatch(out[r.seen:])
			r.seen += loc[1]
			return m
		}
		select {
		case <-r.done:
			if out := r.out.String(); rx.MatchString(out[r.seen:]) {
				continue
			}
			t.Fatalf("scripts/up.sh exited (%v) before printing %q", r.cmd.ProcessState, re)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("scripts/up.sh did not print %q within %v", re, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exit waits up to timeout for the script to end and returns its status.
func (r *upRun) exit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
		return r.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("scripts/up.sh still running %v after it was asked to stop", timeout)
		return 0
	}
}

// TestUpRestartsAReplicaAndDrainsInOrder is make up's contract: a replica
// killed with SIGKILL is restarted and serves again, and SIGTERM (as Ctrl-C)
// stops the gateway first, so that a stream in flight gets every image, and
// the upscalers only once it is done.
func TestUpRestartsAReplicaAndDrainsInOrder(t *testing.T) {
	r := startUp(t, nil)
	r.next(t, `Ctrl-C stops the stack`, 60*time.Second)
	m := startedRE.FindStringSubmatch(regexp.MustCompile(`upscaler-1 started \(pid \d+`).FindString(r.out.String()))
	if m == nil {
		t.Fatal("no 'upscaler-1 started (pid N' line")
	}
	pid, _ := strconv.Atoi(m[1])
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	logPath := r.next(t, `upscaler-1 \(pid `+m[1]+`\) exited with status 137 \(killed by SIGKILL\) after [0-9.]+s; log: (\S+); restarting in`, 10*time.Second)[1]
	if _, err := os.Stat(logPath); err != nil {
		t.Errorf("the crash line names log %s: %v", logPath, err)
	}
	again := r.next(t, `upscaler-1 started \(pid (\d+)`, 10*time.Second)[1]
	if again == m[1] {
		t.Fatalf("restarted with the same pid %s", again)
	}
	waitServing(t, &proc{name: "upscaler-1 (restarted)", addr: r.upscaler[0], out: r.out, done: r.done}, "hirez.v1.UpscalerService")

	gw := pb.NewGatewayServiceClient(dial(t, r.gateway))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if got, err := generate(ctx, gw, &pb.GenerateImagesRequest{Count: 2, Seed: 5}, nil); err != nil || len(got) != 2 {
		t.Fatalf("after the restart: %d images, %v", len(got), err)
	}

	// SIGTERM once the stream has begun; its reader then pauses, so that the
	// rest of it is still being made while the gateway drains.
	const n = 24
	stream := openStream(t, ctx, gw, &pb.GenerateImagesRequest{Count: n, Seed: 9})
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r.next(t, `stopping gateway \(SIGTERM`, 5*time.Second)
	time.Sleep(500 * time.Millisecond)
	got := 1
	for {
		_, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("the stream in flight at SIGTERM failed after %d of %d images: %v", got, n, err)
			}
			break
		}
		got++
	}
	if got != n {
		t.Fatalf("the stream in flight at SIGTERM ended after %d of %d images", got, n)
	}
	if code := r.exit(t, 40*time.Second); code != 143 {
		t.Errorf("exit status %d after SIGTERM, want 143", code)
	}
	// The order: the gateway has exited before the others are asked to stop.
	r.seen = 0
	r.next(t, `gateway stopped \(status 0\)`, 0)
	r.next(t, `stopping [^\n]+ \(SIGTERM`, 0)
	for _, name := range []string{"generator", "upscaler-1", "upscaler-2"} {
		if !strings.Contains(r.out.String(), name+" stopped (status 0)") {
			t.Errorf("no '%s stopped (status 0)' line", name)
		}
	}
}

// TestUpGivesUpOnACrashLoop: an upscaler that cannot start (its port is
// taken) is restarted with backoff, then given up with its log's end, and the
// stack stops with status 1 rather than limping on or waiting for ever.
func TestUpGivesUpOnACrashLoop(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r := startUp(t, []string{servertest.FreeAddr(t), busy.Addr().String()})
	for i := 1; i < 5; i++ {
		r.next(t, fmt.Sprintf(`upscaler-2 \(pid \d+\) exited with status 1 .*fast exit %d of 5`, i), 20*time.Second)
	}
	r.next(t, `upscaler-2 \(pid \d+\) exited with status 1 .*giving up and stopping the stack`, 20*time.Second)
	r.next(t, `address already in use`, 5*time.Second)
	if code := r.exit(t, 40*time.Second); code != 1 {
		t.Errorf("exit status %d after giving up, want 1", code)
	}
}
