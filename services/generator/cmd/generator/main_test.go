package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/platform/config"
	"github.com/hirez-ml/hirez/platform/modelserver/modelservertest"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// TestServesTheBundledModel runs the generator's real main on loopback with
// the bundled DCGAN: SERVING once loaded, and its service answers.
func TestServesTheBundledModel(t *testing.T) {
	conn, _ := modelservertest.Run(t, spec(), "--model", "../../../../models/dcgan32-smileys.safetensors")
	resp, err := pb.NewGeneratorServiceClient(conn).ListLabels(context.Background(), &pb.ListLabelsRequest{})
	if err != nil || !strings.HasPrefix(resp.GetModel().GetVersion(), pb.DigestPrefix) {
		t.Fatalf("ListLabels: %v, %v; want the served version", resp, err)
	}
}

func TestUsageNamesTheGenerator(t *testing.T) {
	err := spec().Run(context.Background(), nil)
	if _, ok := errors.AsType[*config.UsageError](err); !ok || !strings.Contains(err.Error(), "a generator safetensors file") {
		t.Fatalf("no model: %v; want a usage error asking for a generator", err)
	}
}
