package choose

import (
	"strings"
	"testing"
)

func TestSelection(t *testing.T) {
	names := Names()
	if len(names) == 0 || names[len(names)-1] != "ref" {
		t.Fatalf("Names() = %v, want ref last", names)
	}
	if Default() != names[0] {
		t.Errorf("Default() = %q, want %q", Default(), names[0])
	}
	for _, n := range All() {
		if r := Unavailable(n); r != "" {
			t.Errorf("Unavailable(%q) = %q for a built-in backend", n, r)
		}
	}
	b, err := Open("ref")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Name() != "ref" {
		t.Errorf("Open(ref).Name() = %q", b.Name())
	}
	d, err := Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Name() != Default() {
		t.Errorf("Open(\"\").Name() = %q, want %q", d.Name(), Default())
	}
}

func TestUnavailable(t *testing.T) {
	for _, name := range []string{"cpu", "cpu-bf16", "cuda", "tpu"} {
		reason := Unavailable(name)
		_, err := Open(name)
		if reason == "" {
			continue // built in
		}
		if err == nil || !strings.Contains(err.Error(), reason) {
			t.Errorf("Open(%q) error %v, want one containing %q", name, err, reason)
		}
	}
	if !strings.Contains(Unavailable("tpu"), "unknown backend") {
		t.Errorf("Unavailable(tpu) = %q", Unavailable("tpu"))
	}
	if _, err := OpenWith("ref", Options{Threads: -1}); err == nil {
		t.Error("negative threads accepted")
	}
}

func TestInferenceOnly(t *testing.T) {
	for _, name := range Names() {
		if InferenceOnly(name) {
			t.Errorf("Names() has the inference-only %q", name)
		}
	}
	for _, name := range All() {
		if InferenceOnly(name) != (name == "cpu-bf16") {
			t.Errorf("InferenceOnly(%q) = %v", name, InferenceOnly(name))
		}
		b, err := OpenWith(name, Options{Training: true})
		if InferenceOnly(name) {
			if err == nil || !strings.Contains(err.Error(), "inference-only") {
				t.Errorf("OpenWith(%q, Training) error %v, want an inference-only refusal", name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("OpenWith(%q, Training): %v", name, err)
			continue
		}
		b.Close()
	}
	if Default() == "cpu-bf16" {
		t.Error("the default backend is inference-only")
	}
	for _, training := range []bool{false, true} {
		d := Describe(training)
		list, _, _ := strings.Cut(d, ";")
		for _, name := range All() {
			listed := false
			for _, item := range strings.Split(list, ", ") {
				listed = listed || strings.Fields(item)[0] == name
			}
			if listed == (training && InferenceOnly(name)) {
				t.Errorf("Describe(%v) = %q: %s listed %v", training, d, name, listed)
			}
		}
	}
}
