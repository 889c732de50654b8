package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/engine/atomicfile"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/platform/client"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// pipelines maps the --pipeline names (and a few spellings of them) to the
// API's enum.
var pipelines = map[string]pb.Pipeline{
	"dcgan-srcnn":     pb.Pipeline_PIPELINE_DCGAN_SRCNN,
	"multistage":      pb.Pipeline_PIPELINE_MULTISTAGE_GAN,
	"single":          pb.Pipeline_PIPELINE_SINGLE_DCGAN,
	"":                pb.Pipeline_PIPELINE_UNSPECIFIED,
	"default":         pb.Pipeline_PIPELINE_UNSPECIFIED,
	"dcgan+srcnn":     pb.Pipeline_PIPELINE_DCGAN_SRCNN,
	"multistage-gan":  pb.Pipeline_PIPELINE_MULTISTAGE_GAN,
	"multi-stage-gan": pb.Pipeline_PIPELINE_MULTISTAGE_GAN,
	"single-dcgan":    pb.Pipeline_PIPELINE_SINGLE_DCGAN,
}

// pipelineHelp names the pipelines for --pipeline's help and errors.
const pipelineHelp = "dcgan-srcnn (DCGAN, then super-resolution ×2 until --size), " +
	"multistage (DCGAN, then the multi-stage GAN's Up Sampler ×2; the gateway needs --upsampler-target) or " +
	"single (one DCGAN trained at --size; the gateway needs --single-generator-target)"

// labelHelp is --label's help.
const labelHelp = "label (class) of the images, e.g. \"Smileys & Emotion\": empty for no constraint, else one of the " +
	"labels of the serving generator ('hirez labels' lists them; any other is refused, naming the ones it knows). " +
	"A model's labels are the emoji groups it was trained on: a class-conditional generator draws the label's " +
	"group (and without a label a group fixed by the seed); one trained on one group or on every emoji only " +
	"checks it. The label each image was drawn with is recorded in its PNG (tEXt hirez:label)"

func generateCommand() Command {
	return Command{
		Name:    "generate",
		Summary: "ask a running gateway for images and write them as PNGs (with provenance)",
		Run:     runGenerate,
	}
}

type generateFlags struct {
	gateway, waitFor, out, pipeline, label string
	count, size                            int
	seed                                   int64
	sheet, timings                         bool
	timeout                                time.Duration
}

func runGenerate(ctx context.Context, env Env, args []string) error {
	var f generateFlags
	fs := newFlags(env, "generate", "[--gateway ADDR] [--count 8] [--seed S] [--size 256] [--pipeline dcgan-srcnn|multistage|single] [--label NAME] [--out DIR]")
	fs.StringVar(&f.gateway, "gateway", "127.0.0.1:9000", "gateway gRPC address")
	fs.StringVar(&f.waitFor, "wait-for", "", "comma-separated gRPC addresses that must report SERVING first (the gateway always must)")
	fs.IntVar(&f.count, "count", 8, fmt.Sprintf("images to make, 1..%d; 0 only waits for the stack to be healthy", pb.MaxGatewayCount))
	fs.Int64Var(&f.seed, "seed", 0, "base seed, image i uses seed+i; 0 lets the gateway pick one (printed)")
	fs.IntVar(&f.size, "size", pb.DefaultImageSize, "output side in pixels: 32, 64, 128 or 256")
	fs.StringVar(&f.pipeline, "pipeline", "dcgan-srcnn", pipelineHelp)
	fs.StringVar(&f.label, "label", "", labelHelp)
	fs.StringVar(&f.out, "out", "out", "directory for the PNGs")
	fs.BoolVar(&f.sheet, "contact-sheet", true, "also write contact-sheet.png with every image")
	fs.BoolVar(&f.timings, "timings", true, "print per-stage timings of each image")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "deadline for the whole run")
	if err := parse(fs, args); err != nil {
		return err
	}
	pipeline, ok := pipelines[strings.ToLower(f.pipeline)]
	if !ok {
		return usagef("--pipeline %q: want %s", f.pipeline, pipelineHelp)
	}
	if f.count < 0 || f.count > pb.MaxGatewayCount {
		return usagef("--count must be between 0 and %d, got %d", pb.MaxGatewayCount, f.count)
	}
	if f.timeout <= 0 {
		return usagef("--timeout must be positive, got %v", f.timeout)
	}
	if len(f.label) > pb.MaxLabelLength {
		return usagef("--label is %d bytes; at most %d are allowed", len(f.label), pb.MaxLabelLength)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	start := time.Now()
	addrs := []string{f.gateway}
	if f.waitFor != "" {
		addrs = append(strings.Split(f.waitFor, ","), addrs...)
	}
	for _, a := range addrs {
		if err := waitServing(ctx, a); err != nil {
			return err
		}
	}
	if f.count == 0 {
		fmt.Fprintf(env.Stdout, "stack healthy after %v\n", time.Since(start).Round(time.Millisecond))
		return nil
	}

	conn, err := client.Dial(f.gateway, client.WithMaxMsgSize(pb.MaxMessageBytes, pb.MaxMessageBytes))
	if err != nil {
		return fmt.Errorf("dial gateway %s: %w", f.gateway, err)
	}
	defer conn.Close()
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	return receiveImages(ctx, env, pb.NewGatewayServiceClient(conn), &pb.GenerateImagesRequest{
		Count: int32(f.count), Seed: f.seed, Size: int32(f.size), Pipeline: pipeline, Label: f.label,
	}, f)
}

// receiveImages runs GenerateImages and writes each image as it arrives.
func receiveImages(ctx context.Context, env Env, gw pb.GatewayServiceClient, req *pb.GenerateImagesRequest, f generateFlags) error {
	start := time.Now()
	stream, err := gw.GenerateImages(ctx, req)
	if err != nil {
		return rpcFailure("GenerateImages", err)
	}
	imgs := make([]*imageio.RGB, req.GetCount())
	stages := map[string]time.Duration{}
	var order []string
	var first time.Duration
	got := 0
	tty := isTerminal(env.Stdout)
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rpcFailure("GenerateImages", err)
		}
		if got == 0 {
			first = time.Since(start)
			fmt.Fprintf(env.Stdout, "base seed %d\n", msg.GetSeed()-int64(msg.GetIndex()))
		}
		got++
		path := filepath.Join(f.out, fmt.Sprintf("image-%02d-seed-%d.png", msg.GetIndex(), msg.GetSeed()))
		if err := atomicfile.WriteBytes(path, msg.GetPng()); err != nil {
			return err
		}
		if i := int(msg.GetIndex()); f.sheet && i >= 0 && i < len(imgs) {
			if imgs[i], err = imageio.Decode(msg.GetPng(), imageio.Limits{}); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		p := msg.GetProvenance()
		var parts []string
		for _, t := range p.GetTimings() {
			d := t.GetDuration().AsDuration()
			if _, ok := stages[t.GetStage()]; !ok {
				order = append(order, t.GetStage())
			}
			stages[t.GetStage()] += d
			s := fmt.Sprintf("%s %v", t.GetStage(), d.Round(10*time.Microsecond))
			if t.GetBatchSize() > 1 {
				s += fmt.Sprintf(" (batch %d)", t.GetBatchSize())
			}
			parts = append(parts, s)
		}
		line := fmt.Sprintf("[%d/%d] %s  %dx%d  after %v  generator %s@%s", got, req.GetCount(), path,
			msg.GetWidth(), msg.GetHeight(), time.Since(start).Round(time.Millisecond),
			p.GetGenerator().GetName(), shortDigest(p.GetGenerator().GetVersion()))
		if l := p.GetLabel(); l != "" {
			line += fmt.Sprintf("  label %q", l)
		}
		if f.timings {
			line += "  [" + strings.Join(parts, ", ") + "]"
		}
		if tty && !f.timings {
			fmt.Fprintf(env.Stdout, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(env.Stdout, line)
		}
	}
	if tty && !f.timings {
		fmt.Fprintln(env.Stdout)
	}
	total := time.Since(start)
	if got != int(req.GetCount()) {
		return fmt.Errorf("the gateway sent %d images, want %d", got, req.GetCount())
	}
	if f.sheet {
		sheet, err := imageio.Grid(slices.DeleteFunc(imgs, func(m *imageio.RGB) bool { return m == nil }),
			imageio.GridOptions{Cols: 4, Pad: 4, Background: [3]uint8{255, 255, 255}})
		if err != nil {
			return err
		}
		path := filepath.Join(f.out, "contact-sheet.png")
		if err := imageio.WritePNGFile(path, sheet); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "contact sheet: %s\n", path)
	}
	fmt.Fprintf(env.Stdout, "%d images in %v (first after %v, %.2f images/s)\n", got,
		total.Round(time.Millisecond), first.Round(time.Millisecond), float64(got)/total.Seconds())
	if f.timings {
		fmt.Fprint(env.Stdout, "summed stage times over all images:")
		for _, s := range order {
			fmt.Fprintf(env.Stdout, "  %s %v", s, stages[s].Round(time.Millisecond))
		}
		fmt.Fprintln(env.Stdout)
	}
	return nil
}

// rpcFailure turns a gRPC status into an error that names the code and keeps
// the server's message, which says what to change.
func rpcFailure(rpc string, err error) error {
	if st, ok := status.FromError(err); ok {
		return fmt.Errorf("%s: %s: %s", rpc, st.Code(), st.Message())
	}
	return fmt.Errorf("%s: %w", rpc, err)
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, pb.DigestPrefix)
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// waitServing polls addr's overall health until SERVING or ctx ends.
func waitServing(ctx context.Context, addr string) error {
	conn, err := client.Dial(addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(false))
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("health %v", resp.GetStatus())
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is not SERVING (is it running?): %w", addr, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
