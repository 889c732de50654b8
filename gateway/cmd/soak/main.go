// Command soak load-tests a running gateway (make soak, scripts/soak.sh):
// it measures capacity with one client, drives --factor times that from
// --clients clients for --duration, prints outcomes by status code, the
// admitted calls' latency against the unloaded p99 and each serving
// process's peak RSS against its Kubernetes memory limit, and exits 1 when
// a goal is missed (package gateway/internal/soak; docs/serving.md, "Soak").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/hirez-ml/hirez/gateway/internal/soak"
	"github.com/hirez-ml/hirez/platform"
	"github.com/hirez-ml/hirez/platform/config"
)

func main() { platform.Main(run) }

// procs is the repeatable --proc NAME=PID flag.
type procs []soak.Proc

func (p *procs) String() string { return fmt.Sprint(*p) }

func (p *procs) Set(v string) error {
	name, pid, ok := strings.Cut(v, "=")
	n, err := strconv.Atoi(pid)
	if !ok || name == "" || err != nil || n < 1 {
		return fmt.Errorf("want NAME=PID, such as upscaler-1=4242, got %q", v)
	}
	*p = append(*p, soak.Proc{Name: name, PID: n})
	return nil
}

func run(ctx context.Context, args []string) error {
	cfg := soak.Defaults
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.StringVar(&cfg.Gateway, "gateway", "127.0.0.1:9000", "gRPC address of the gateway (host:port)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to drive the load (after the calibration)")
	fs.DurationVar(&cfg.Calibrate, "calibrate", cfg.Calibrate, "how long one client measures the unloaded capacity and p99")
	fs.Float64Var(&cfg.Factor, "factor", cfg.Factor, "offered load as a multiple of the measured capacity")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent clients, each on its own connection (and 127.0.0.x address on loopback)")
	mix := fs.String("mix", soak.DefaultMix, "requests asked for: COUNTxSIZE:WEIGHT,…")
	fs.DurationVar(&cfg.Deadline, "deadline", cfg.Deadline, "deadline of each call")
	fs.DurationVar(&cfg.GiveUp, "give-up", cfg.GiveUp, "a refused request retries (after the RetryInfo delay) until this long after it arrived")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "time between progress reports")
	fs.Float64Var(&cfg.LatencyGoal, "latency-goal", cfg.LatencyGoal, "goal: admitted p99 at most this many times the unloaded p99")
	fs.Var((*procs)(&cfg.Procs), "proc", "NAME=PID of a serving process whose peak RSS is checked against its limit (repeatable)")
	k8s := fs.String("k8s", "k8s/base", "directory of the Kubernetes manifests holding the memory limits")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the arrivals and the mix")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &config.UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return &config.UsageError{Err: fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	var err error
	if cfg.Mix, err = soak.ParseMix(*mix); err != nil {
		return &config.UsageError{Err: fmt.Errorf("--mix: %w", err)}
	}
	if err := cfg.Validate(); err != nil {
		return &config.UsageError{Err: err}
	}
	if len(cfg.Procs) > 0 {
		if cfg.Limits, err = soak.ReadLimits(*k8s); err != nil {
			return &config.UsageError{Err: fmt.Errorf("--k8s: %w", err)}
		}
	}
	cfg.Out = os.Stdout
	res, err := soak.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if missed := res.Missed(); len(missed) > 0 {
		return fmt.Errorf("%d goal(s) missed: %s", len(missed), strings.Join(missed, "; "))
	}
	return nil
}
