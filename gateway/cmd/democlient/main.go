// Command democlient is the client of `make demo`: it waits for a running
// stack to be healthy, asks the gateway for images, writes each PNG (with its
// provenance tEXt chunks) and a contact sheet, and prints where they are with
// per-stage timings. `democlient ports N` prints N free loopback ports for the
// demo script to start servers on.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/platform"
	"github.com/hirez-ml/hirez/platform/client"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

func main() { platform.Main(run) }

func run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "ports" {
		return ports(args[1:])
	}
	fs := flag.NewFlagSet("democlient", flag.ContinueOnError)
	gateway := fs.String("gateway", "127.0.0.1:9000", "gateway gRPC address")
	waitFor := fs.String("wait-for", "", "comma-separated gRPC addresses that must report SERVING first")
	count := fs.Int("count", 8, "images to make; 0 only waits for the stack to be healthy")
	seed := fs.Int64("seed", 2026, "base seed (image i uses seed+i)")
	size := fs.Int("size", 256, "output side in pixels")
	out := fs.String("out", "out", "directory for the PNGs and the contact sheet")
	timeout := fs.Duration("timeout", 5*time.Minute, "deadline for the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	addrs := []string{*gateway}
	if *waitFor != "" {
		addrs = append(strings.Split(*waitFor, ","), addrs...)
	}
	start := time.Now()
	for _, a := range addrs {
		if err := waitServing(ctx, a); err != nil {
			return err
		}
	}
	fmt.Printf("stack healthy after %v\n", time.Since(start).Round(time.Millisecond))
	if *count == 0 {
		return nil // --count 0: only wait for the stack
	}

	conn, err := client.Dial(*gateway, client.WithMaxMsgSize(pb.MaxMessageBytes, pb.MaxMessageBytes))
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	start = time.Now()
	stream, err := pb.NewGatewayServiceClient(conn).GenerateImages(ctx, &pb.GenerateImagesRequest{Count: int32(*count), Seed: *seed, Size: int32(*size)})
	if err != nil {
		return fmt.Errorf("GenerateImages: %w", err)
	}
	imgs := make([]*imageio.RGB, *count)
	var first time.Duration
	stages := map[string]time.Duration{}
	var order []string
	for n := 0; ; n++ {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("GenerateImages: %w", err)
		}
		if n == 0 {
			first = time.Since(start)
		}
		path := filepath.Join(*out, fmt.Sprintf("image-%02d-seed-%d.png", msg.GetIndex(), msg.GetSeed()))
		if err := os.WriteFile(path, msg.GetPng(), 0o644); err != nil {
			return err
		}
		img, err := imageio.Decode(msg.GetPng(), imageio.Limits{})
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if i := int(msg.GetIndex()); i >= 0 && i < len(imgs) {
			imgs[i] = img
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
		fmt.Printf("%s  %dx%d  after %v  generator %s@%s  [%s]\n", path, msg.GetWidth(), msg.GetHeight(),
			time.Since(start).Round(time.Millisecond), p.GetGenerator().GetName(), short(p.GetGenerator().GetVersion()), strings.Join(parts, ", "))
	}
	total := time.Since(start)
	imgs = slices.DeleteFunc(imgs, func(m *imageio.RGB) bool { return m == nil })
	if len(imgs) != *count {
		return fmt.Errorf("got %d images, want %d", len(imgs), *count)
	}
	sheet, err := imageio.Grid(imgs, imageio.GridOptions{Cols: 4, Pad: 4, Background: [3]uint8{255, 255, 255}})
	if err != nil {
		return err
	}
	sheetPath := filepath.Join(*out, "contact-sheet.png")
	if err := imageio.WritePNGFile(sheetPath, sheet); err != nil {
		return err
	}
	fmt.Printf("contact sheet: %s\n", sheetPath)
	fmt.Printf("%d images in %v (first after %v, %.2f images/s)\n", len(imgs), total.Round(time.Millisecond), first.Round(time.Millisecond), float64(len(imgs))/total.Seconds())
	fmt.Printf("summed stage times over all images:")
	for _, s := range order {
		fmt.Printf("  %s %v", s, stages[s].Round(time.Millisecond))
	}
	fmt.Println()
	return nil
}

func short(d string) string {
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
		return err
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
			err = fmt.Errorf("status %v", resp.GetStatus())
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not SERVING: %w", addr, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ports prints n free loopback TCP ports, one per line.
func ports(args []string) error {
	n := 1
	if len(args) > 0 {
		var err error
		if n, err = strconv.Atoi(args[0]); err != nil || n < 1 {
			return fmt.Errorf("ports: want a positive count, got %q", args[0])
		}
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n { // hold all open until printed, so the ports differ
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}
