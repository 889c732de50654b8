package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRenderDev(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"../../overlays/dev"}, &out, &errOut); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{"kind: Deployment", "namespace: hirez-dev", "image: registry.example/hirez/upscaler:v0.1.0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestRenderBrokenFails(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run([]string{"-check", "../../internal/policy/testdata/broken"}, &out, &errOut)
	if err == nil {
		t.Fatal("broken overlay passed")
	}
	if out.Len() != 0 {
		t.Errorf("-check printed YAML")
	}
	if !strings.Contains(errOut.String(), `Deployment/upscaler: container "upscaler": no readiness probe`) {
		t.Errorf("stderr lacks the violation:\n%s", errOut.String())
	}
}
