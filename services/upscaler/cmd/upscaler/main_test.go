package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/platform/config"
	"github.com/hirez-ml/hirez/platform/modelserver/modelservertest"
	"github.com/hirez-ml/hirez/services/upscaler/internal/upscale"
)

// TestServesTheBundledModel runs the upscaler's real main on loopback with
// the bundled ESPCN: SERVING once loaded, with its in-flight metrics and
// --max-inflight-bytes as their limit.
func TestServesTheBundledModel(t *testing.T) {
	_, metrics := modelservertest.Run(t, spec(), "--model", "../../../../models/espcn-residual-x2-emoji.safetensors",
		"--max-inflight-bytes", "12345")
	resp, err := http.Get(metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{upscale.MetricInFlightBytesLimit + " 12345", upscale.MetricInFlightBytes + " 0"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "an upscaler safetensors file"},
		{[]string{"--model", "m.safetensors", "--max-inflight-bytes", "0"}, "in-flight bytes must be positive"},
	} {
		err := spec().Run(context.Background(), tc.args)
		if _, ok := errors.AsType[*config.UsageError](err); !ok || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want a usage error with %q", tc.args, err, tc.want)
		}
	}
}
