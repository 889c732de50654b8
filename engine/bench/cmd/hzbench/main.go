//go:build cgo

// Command hzbench times the benchmark workloads on the cpu backends and prints
// one JSON line per workload (median of several repetitions), for
// scripts/bench.sh.
//
//	hzbench -threads 2 -reps 5                        all workloads, cpu and cpu-bf16 (when native)
//	hzbench -backends cpu -only srcnn_b1              one workload on one backend
//	hzbench -rss srcnn -backends cpu-bf16             peak RSS of one 256² SRCNN inference
//	ONEDNN_VERBOSE=1 hzbench -probe                   one tiny SRCNN forward, for oneDNN's info lines (its ISA)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/bench"
)

type result struct {
	Name    string    `json:"name"`
	Backend string    `json:"backend,omitempty"`
	MS      float64   `json:"ms,omitempty"`
	GFLOP   float64   `json:"gflop,omitempty"`
	Runs    []float64 `json:"runs_ms,omitempty"`
	Allocs  float64   `json:"allocs_per_op"`
	RSSMB   float64   `json:"rss_mb,omitempty"`
	Peak    float64   `json:"peak_gflops,omitempty"`
	PeakISA string    `json:"peak_isa,omitempty"`
	Threads int       `json:"threads"`
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
	names := flag.String("backends", defaultBackends(), "comma-separated backends; inference-only ones skip the training step")
	probe := flag.Bool("probe", false, "run one tiny SRCNN forward (16² output) on the first backend and exit: with ONEDNN_VERBOSE=1, oneDNN prints its version, runtime and effective ISA")
	list := flag.Bool("list", false, "print the default -backends (cpu, and cpu-bf16 where this CPU has native bfloat16) and exit")
	flag.Parse()
	if *list {
		fmt.Println(defaultBackends())
		return nil
	}
	enc := json.NewEncoder(os.Stdout)

	if *probe {
		be, err := choose.OpenWith(strings.Split(*names, ",")[0], choose.Options{Threads: *threads})
		if err != nil {
			return err
		}
		defer be.Close()
		f, err := bench.SRCNN(be, 1, 8)
		if err != nil {
			return err
		}
		defer f.Free()
		return f.Run()
	}

	if *rss != "" {
		if *rss != "srcnn" {
			return fmt.Errorf("-rss %q: only srcnn", *rss)
		}
		name := strings.Split(*names, ",")[0]
		be, err := choose.OpenWith(name, choose.Options{Threads: *threads})
		if err != nil {
			return err
		}
		defer be.Close()
		f, err := bench.SRCNN(be, 1, 128)
		if err != nil {
			return err
		}
		if err := f.Run(); err != nil {
			return err
		}
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return err
		}
		return enc.Encode(result{Name: "srcnn_rss", Backend: name, RSSMB: float64(ru.Maxrss) / 1024, Threads: *threads})
	}

	peak, err := bench.PeakGFLOPS(*threads)
	if err != nil {
		return err
	}
	if err := enc.Encode(result{Name: "peak", Peak: peak, PeakISA: bench.PeakISA(), Threads: *threads}); err != nil {
		return err
	}
	data, err := os.MkdirTemp("", "hzbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(data)
	if err := bench.WriteImages(data, 32, 64); err != nil {
		return err
	}
	for _, name := range strings.Split(*names, ",") {
		be, err := choose.OpenWith(name, choose.Options{Threads: *threads})
		if err != nil {
			return err
		}
		for _, w := range workloads(data) {
			if *only != "" && *only != w.name || w.train && choose.InferenceOnly(name) {
				continue
			}
			r, err := w.time(be, *reps)
			if err != nil {
				be.Close()
				return fmt.Errorf("%s on %s: %w", w.name, name, err)
			}
			r.Backend, r.Threads = name, *threads
			if err := enc.Encode(r); err != nil {
				be.Close()
				return err
			}
		}
		be.Close()
	}
	return nil
}

// defaultBackends is cpu, plus cpu-bf16 when this binary and CPU can run it.
func defaultBackends() string {
	if choose.Unavailable("cpu-bf16") == "" {
		return "cpu,cpu-bf16"
	}
	return "cpu"
}

type workload struct {
	name  string
	train bool
	// run times reps runs (after a warm-up) and returns them with the FLOPs of one.
	run func(be backend.Backend, reps int) ([]bench.Sample, float64, error)
}

func forward(build func(be backend.Backend) (*bench.Forward, error)) func(backend.Backend, int) ([]bench.Sample, float64, error) {
	return func(be backend.Backend, reps int) ([]bench.Sample, float64, error) {
		f, err := build(be)
		if err != nil {
			return nil, 0, err
		}
		defer f.Free()
		s, err := bench.TimeRuns(f.Run, reps)
		return s, f.FLOPs(), err
	}
}

func workloads(data string) []workload {
	srcnn := func(n int) workload {
		return workload{name: fmt.Sprintf("srcnn_b%d", n), run: forward(func(be backend.Backend) (*bench.Forward, error) {
			return bench.SRCNN(be, n, 128)
		})}
	}
	return []workload{
		srcnn(1),
		srcnn(8),
		{name: "generator_h128_b16", run: forward(func(be backend.Backend) (*bench.Forward, error) {
			return bench.Generator(be, 16, 128)
		})},
		{name: "train_step_h64_b16", train: true, run: func(be backend.Backend, reps int) ([]bench.Sample, float64, error) {
			flops, err := bench.TrainStepFLOPs(16, 64)
			if err != nil {
				return nil, 0, err
			}
			s, err := bench.TrainSteps(context.Background(), be, data, 16, 64, reps)
			return s, flops, err
		}},
	}
}

func (w workload) time(be backend.Backend, reps int) (result, error) {
	s, flops, err := w.run(be, reps)
	if err != nil {
		return result{}, err
	}
	runs := make([]float64, len(s))
	var allocs uint64
	for i, x := range s {
		runs[i] = float64(x.Time.Microseconds()) / 1e3
		allocs += x.Allocs
	}
	sorted := slices.Clone(runs)
	slices.Sort(sorted)
	return result{Name: w.name, MS: sorted[len(sorted)/2], GFLOP: flops / 1e9, Runs: runs,
		Allocs: float64(allocs) / float64(len(s))}, nil
}
