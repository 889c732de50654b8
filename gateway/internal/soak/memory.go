package soak

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Proc is one serving process to watch: its name in reports (e.g.
// "upscaler-1") and its pid.
type Proc struct {
	Name string
	PID  int
}

// ReadLimits returns the container memory limit (resources.limits.memory)
// of every Deployment in the *.yaml files of dir, by Deployment name.
//
// A line-by-line reading of the manifests' plain block style, not a YAML
// parser: the gateway module takes no YAML dependency for one field, and
// the reading refuses what it does not understand (two memory limits in
// one Deployment, an unreadable quantity) rather than guessing.
func ReadLimits(dir string) (map[string]int64, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	limits := map[string]int64{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, doc := range strings.Split(string(data), "\n---") {
			name, limit, err := deploymentLimit(doc)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if name != "" {
				limits[name] = limit
			}
		}
	}
	if len(limits) == 0 {
		return nil, fmt.Errorf("no Deployment with a memory limit in %s/*.yaml", dir)
	}
	return limits, nil
}

// deploymentLimit reads one YAML document: its name and memory limit when
// it is a Deployment with one, else "".
func deploymentLimit(doc string) (name string, limit int64, err error) {
	var (
		kind, memory string
		memories     int
		section      string // the top-level key the line is under
		limitsIndent = -1   // indent of the "limits:" key being read, or -1
	)
	for line := range strings.Lines(doc) {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		key, value, _ := strings.Cut(trimmed, ":")
		value = strings.Trim(strings.TrimSpace(value), `"'`)
		if indent == 0 {
			section = key
		}
		if limitsIndent >= 0 && indent <= limitsIndent {
			limitsIndent = -1
		}
		switch {
		case indent == 0 && key == "kind":
			kind = value
		case section == "metadata" && indent == 2 && key == "name":
			name = value
		case key == "limits" && value == "":
			limitsIndent = indent
		case limitsIndent >= 0 && key == "memory":
			memory = value
			memories++
		}
	}
	switch {
	case kind != "Deployment" || memories == 0:
		return "", 0, nil
	case memories > 1:
		return "", 0, fmt.Errorf("deployment %s: %d memory limits (one container expected)", name, memories)
	}
	if limit, err = ParseQuantity(memory); err != nil {
		return "", 0, fmt.Errorf("deployment %s: memory limit: %w", name, err)
	}
	return name, limit, nil
}

// ParseQuantity reads a Kubernetes memory quantity: a decimal number with an
// optional suffix k, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (of 1024).
func ParseQuantity(q string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}}
	num, mult := q, 1.0
	for _, u := range units {
		if n, ok := strings.CutSuffix(q, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || strings.ContainsAny(num, "eE") {
		return 0, fmt.Errorf("quantity %q: want a positive number with an optional suffix Ki, Mi, Gi, Ti, k, M, G or T", q)
	}
	return int64(v * mult), nil
}

// LimitFor is the memory limit of the Deployment that runs p's binary
// (/proc/PID/comm: "upscaler" for upscaler-1, the Up Sampler and any other
// upscaler process).
func LimitFor(p Proc, limits map[string]int64) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.PID))
	if err != nil {
		return 0, fmt.Errorf("%s (pid %d) is not running: %w", p.Name, p.PID, err)
	}
	bin := strings.TrimSpace(string(data))
	limit, ok := limits[bin]
	if !ok {
		return 0, fmt.Errorf("%s (pid %d) runs %q, which has no Deployment with a memory limit", p.Name, p.PID, bin)
	}
	return limit, nil
}

// PeakRSS is the process's peak resident set (VmHWM) in bytes; ok is false
// once the process has gone.
func PeakRSS(pid int) (bytes int64, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(data)) {
		if rest, found := strings.CutPrefix(line, "VmHWM:"); found {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false // a zombie has no VmHWM
}
