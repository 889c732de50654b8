package soak

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: DefaultMix, want: DefaultMix},
		{in: "1x256", want: "1x256:1"},
		{in: " 4x64:2 , 1x128 ", want: "4x64:2,1x128:1"},
		{in: "", err: "no request classes"},
		{in: "3x", err: "want COUNTxSIZE"},
		{in: "ax256", err: "want COUNTxSIZE"},
		{in: "1x256:0", err: "weight"},
		{in: "0x256", err: "count must be"},
		{in: "257x256", err: "count must be"},
		{in: "1x100000", err: "size must be"},
	} {
		m, err := ParseMix(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseMix(%q) = %v, %v; want an error with %q", tc.in, m, err, tc.err)
			}
		case err != nil || m.String() != tc.want:
			t.Errorf("ParseMix(%q) = %v, %v; want %s", tc.in, m, err, tc.want)
		}
	}
}

func TestParseQuantity(t *testing.T) {
	for in, want := range map[string]int64{"512Mi": 512 << 20, "4Gi": 4 << 30, "1.5Gi": 3 << 29, "128974848": 128974848, "129M": 129e6, "64Ki": 64 << 10} {
		if got, err := ParseQuantity(in); err != nil || got != want {
			t.Errorf("ParseQuantity(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "Mi", "-1Gi", "0", "1e9", "12Qi", "lots"} {
		if got, err := ParseQuantity(in); err == nil {
			t.Errorf("ParseQuantity(%q) = %d, want an error", in, got)
		}
	}
}

// TestReadLimitsOfTheRepository reads the real manifests.
func TestReadLimitsOfTheRepository(t *testing.T) {
	got, err := ReadLimits("../../../k8s/base")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int64{"gateway": 512 << 20, "generator": 1 << 30, "upscaler": 4 << 30, "trainer": 8 << 30} {
		if got[name] != want {
			t.Errorf("limit of %s = %d, want %d (all: %v)", name, got[name], want, got)
		}
	}
}

func TestReadLimitsRefusesWhatItCannotRead(t *testing.T) {
	for name, yaml := range map[string]string{
		"two containers": "kind: Deployment\nmetadata:\n  name: x\nspec:\n  containers:\n    - resources:\n        limits:\n          memory: 1Gi\n    - resources:\n        limits:\n          memory: 2Gi\n",
		"bad quantity":   "kind: Deployment\nmetadata:\n  name: x\nspec:\n  resources:\n    limits:\n      memory: lots\n",
		"no deployment":  "kind: Service\nmetadata:\n  name: x\n",
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "x.yaml"), []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadLimits(dir); err == nil {
			t.Errorf("%s: ReadLimits = %v, want an error", name, got)
		}
	}
	// A requests block beside the limits is not a limit.
	dir := t.TempDir()
	yaml := "kind: Deployment\nmetadata:\n  name: x\nspec:\n  resources:\n    requests:\n      memory: 1Gi\n    limits:\n      cpu: 1\n      memory: 2Gi\n"
	if err := os.WriteFile(filepath.Join(dir, "x.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadLimits(dir); err != nil || got["x"] != 2<<30 {
		t.Errorf("ReadLimits = %v, %v; want x: 2Gi", got, err)
	}
}

func TestValidate(t *testing.T) {
	ok := Defaults
	ok.Gateway, ok.Mix = "127.0.0.1:9000", Mix{{Count: 1, Size: 256, Weight: 1}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, edit := range map[string]func(*Config){
		"no gateway":        func(c *Config) { c.Gateway = "" },
		"zero duration":     func(c *Config) { c.Duration = 0 },
		"negative deadline": func(c *Config) { c.Deadline = -time.Second },
		"no clients":        func(c *Config) { c.Clients = 0 },
		"zero factor":       func(c *Config) { c.Factor = 0 },
		"empty mix":         func(c *Config) { c.Mix = nil },
	} {
		c := ok
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestQuantileAndGoals(t *testing.T) {
	lat := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if q := quantile(lat, 0.5); q != 5 {
		t.Errorf("p50 = %v", q)
	}
	if q := quantile(lat, 0.99); q != 10 {
		t.Errorf("p99 = %v", q)
	}
	r := &Result{OK: 3, Goal: 2, Unloaded: Capacity{P99: time.Second}, P99: 1500 * time.Millisecond,
		Memory: []Memory{{Proc: Proc{Name: "gateway"}, Peak: 100, Limit: 200}}}
	if m := r.Missed(); len(m) != 0 {
		t.Errorf("all held, but missed: %v", m)
	}
	r.P99, r.MidStream, r.Memory[0].Peak, r.Memory[0].Exited = 3*time.Second, 1, 300, true
	if m := r.Missed(); len(m) != 4 {
		t.Errorf("missed %q, want 4: latency, mid-stream, memory, exit", m)
	}
}
