//go:build cgo

// Command hzbench times the benchmark workloads on the cpu backend and prints one
// JSON line per workload (median of several repetitions), for scripts/bench.sh.
//
//	hzbench -threads 2 -reps 5            all workloads
//	hzbench -rss srcnn                    peak RSS of one 256² SRCNN inference
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/cpu"
	"github.com/hirez-ml/hirez/engine/bench"
)

type result struct {
	Name   string    `json:"name"`
	MS     float64   `json:"ms"`
	GFLOP  float64   `json:"gflop"`
	Runs   []float64 `json:"runs_ms"`
	RSSMB  float64   `json:"rss_mb,omitempty"`
	Peak   float64   `json:"peak_gflops,omitempty"`
	Thread int       `json:"threads"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hzbench:", err)
		os.Exit(1)
	}
}

func run() error {
	threads := flag.Int("threads", 2, "OpenMP threads")
	reps := flag.Int("reps", 5, "timed repetitions per workload (median reported)")
	rss := flag.String("rss", "", "measure the peak RSS of one workload (srcnn) and exit")
	only := flag.String("only", "", "run only the named workload")
	flag.Parse()

	be, err := cpu.New(cpu.Options{Threads: *threads})
	if err != nil {
		return err
	}
	defer be.Close()
	enc := json.NewEncoder(os.Stdout)

	if *rss != "" {
		net, err := bench.SRCNN(be, 1, 128)
		if err != nil {
			return err
		}
		x, err := bench.Input(be, 3*128*128, 1)
		if err != nil {
			return err
		}
		out := make([]float32, 3*256*256)
		y, err := net.Forward(be, x)
		if err == nil {
			err = be.Download(out, y)
		}
		if err != nil {
			return err
		}
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return err
		}
		return enc.Encode(result{Name: "srcnn_rss", RSSMB: float64(ru.Maxrss) / 1024, Thread: *threads})
	}

	peak, err := bench.PeakGFLOPS(*threads)
	if err != nil {
		return err
	}
	if err := enc.Encode(result{Name: "peak", Peak: peak, Thread: *threads}); err != nil {
		return err
	}
	for _, w := range workloads() {
		if *only != "" && *only != w.name {
			continue
		}
		r, err := w.time(be, *reps)
		if err != nil {
			return fmt.Errorf("%s: %w", w.name, err)
		}
		r.Thread = *threads
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

type workload struct {
	name  string
	build func(be backend.Backend) (run func() error, flops float64, err error)
}

func forward(net *bench.Net, err error, be backend.Backend, in, out int) (func() error, float64, error) {
	if err != nil {
		return nil, 0, err
	}
	x, err := bench.Input(be, in, 1)
	if err != nil {
		return nil, 0, err
	}
	host := make([]float32, out)
	return func() error {
		y, err := net.Forward(be, x)
		if err != nil {
			return err
		}
		return be.Download(host, y)
	}, net.FLOPs(), nil
}

func workloads() []workload {
	srcnn := func(b int) workload {
		return workload{fmt.Sprintf("srcnn_b%d", b), func(be backend.Backend) (func() error, float64, error) {
			net, err := bench.SRCNN(be, b, 128)
			return forward(net, err, be, b*3*128*128, b*3*256*256)
		}}
	}
	return []workload{
		srcnn(1),
		srcnn(8),
		{"generator_h128_b16", func(be backend.Backend) (func() error, float64, error) {
			net, err := bench.Generator(be, 16, 128, false)
			return forward(net, err, be, 16*100, 16*3*128*128)
		}},
		{"train_step_h64_b16", func(be backend.Backend) (func() error, float64, error) {
			t, err := bench.NewTrainStep(be, 16, 64)
			if err != nil {
				return nil, 0, err
			}
			return t.Run, t.FLOPs(), nil
		}},
	}
}

func (w workload) time(be backend.Backend, reps int) (result, error) {
	run, flops, err := w.build(be)
	if err != nil {
		return result{}, err
	}
	if err := run(); err != nil { // warm-up: primitive creation, weight packing
		return result{}, err
	}
	runs := make([]float64, reps)
	for i := range runs {
		t := time.Now()
		if err := run(); err != nil {
			return result{}, err
		}
		runs[i] = float64(time.Since(t).Microseconds()) / 1e3
	}
	s := slices.Clone(runs)
	slices.Sort(s)
	return result{Name: w.name, MS: s[len(s)/2], GFLOP: flops / 1e9, Runs: runs}, nil
}
