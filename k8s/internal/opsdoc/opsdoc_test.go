package opsdoc

import (
	"maps"
	"strings"
	"testing"
)

func TestParseRepoDoc(t *testing.T) {
	d, err := Load("../../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]int32{
		"generator": {"grpc": 9001, "metrics": 9090},
		"upscaler":  {"grpc": 9002, "metrics": 9090},
		"trainer":   {"grpc": 9003, "metrics": 9090},
		"gateway":   {"grpc": 9000, "http": 8080, "metrics": 9090},
		"hirez":     {},
	}
	for name, ports := range want {
		b, ok := d.Binaries[name]
		if !ok {
			t.Errorf("binary %s missing", name)
			continue
		}
		if !maps.Equal(b.Ports, ports) {
			t.Errorf("%s ports = %v, want %v", name, b.Ports, ports)
		}
	}
	if d.Binaries["upscaler"].Module != "services/upscaler" {
		t.Errorf("upscaler module = %q", d.Binaries["upscaler"].Module)
	}
	for _, env := range []string{"HIREZ_GRPC_ADDR", "HIREZ_UPSCALER_TARGET", "HIREZ_ADMIN_TOKEN_FILE"} {
		if !d.Env[env] {
			t.Errorf("env %s not found", env)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"no table", "# x\n", "no \"## Binaries\" table"},
		{"bad port", "## Binaries\n| binary | module | gRPC port | extra |\n|---|---|---|---|\n| `a` | `m` | 9x | – |\n", "gRPC port"},
		{"bad extra", "## Binaries\n| binary | module | gRPC port | extra |\n|---|---|---|---|\n| `a` | `m` | 1 | metrics |\n", "extra port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
