package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hirez-ml/hirez/platform/client"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

func labelsCommand() Command {
	return Command{
		Name:    "labels",
		Summary: "list the labels the gateway's generator knows (the values 'hirez generate --label' takes)",
		Run:     runLabels,
	}
}

func runLabels(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "labels", "[--gateway ADDR] [--pipeline dcgan-srcnn|multistage|single] [--timeout 30s]")
	gateway := fs.String("gateway", "127.0.0.1:9000", "gateway gRPC address")
	pipelineName := fs.String("pipeline", "dcgan-srcnn", "the pipeline whose generator is asked: "+pipelineHelp)
	timeout := fs.Duration("timeout", 30*time.Second, "deadline for the call")
	if err := parse(fs, args); err != nil {
		return err
	}
	pipeline, ok := pipelines[strings.ToLower(*pipelineName)]
	if !ok {
		return usagef("--pipeline %q: want %s", *pipelineName, pipelineHelp)
	}
	if *timeout <= 0 {
		return usagef("--timeout must be positive, got %v", *timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	conn, err := client.Dial(*gateway)
	if err != nil {
		return fmt.Errorf("dial gateway %s: %w", *gateway, err)
	}
	defer conn.Close()
	resp, err := pb.NewGatewayServiceClient(conn).ListLabels(ctx, &pb.GatewayServiceListLabelsRequest{Pipeline: pipeline})
	if err != nil {
		return rpcFailure("ListLabels", err)
	}
	g := resp.GetGenerator()
	labels := resp.GetLabels()
	switch len(labels) {
	case 0:
		fmt.Fprintf(env.Stdout, "generator %s@%s knows no labels (it was trained on every emoji group): leave --label empty\n", g.GetName(), g.GetVersion())
	case 1:
		fmt.Fprintf(env.Stdout, "generator %s@%s knows 1 label:\n", g.GetName(), g.GetVersion())
	default:
		fmt.Fprintf(env.Stdout, "generator %s@%s knows %d labels:\n", g.GetName(), g.GetVersion(), len(labels))
	}
	for _, l := range labels {
		fmt.Fprintf(env.Stdout, "  %s\n", l)
	}
	return nil
}
