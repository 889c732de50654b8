// Package grpcapi is the upscaler's transport: it converts hirez.v1 messages
// to and from the upscale domain and is the only package of the service that
// imports generated code. Errors are returned as domain faults; the platform's
// server interceptor maps them to statuses in one place (platform/rpcerr).
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/platform/hotswap"
	"github.com/hirez-ml/hirez/proto/hirez/limits"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
	"github.com/hirez-ml/hirez/services/upscaler/internal/upscale"
)

// ServiceName is the full gRPC service name, also its health-check name.
const ServiceName = "hirez.v1.UpscalerService"

// Limits are the API's limits as the domain reads them.
var Limits = upscale.Limits{
	MaxImages:           pb.MaxUpscaleBatch,
	MaxInputSide:        pb.MaxUpscaleInputSide,
	MaxOutputSide:       pb.MaxUpscaleOutputSide,
	MaxCallOutputPixels: pb.MaxUpscaleCallOutputPixels,
}

// StreamWindow is the fixed HTTP/2 flow-control window of every stream the
// server receives on. gRPC otherwise grows it by bandwidth-delay estimation
// up to 16 MiB per stream, and a stream's client may push that much into the
// process whatever the in-flight budget says (measured: 40 streams of 256²
// images held ≈ 0.6 GB with the budget at 128 MiB). StreamUpscale reads a
// message only once the one before it is admitted, so beyond the budget a
// stream holds this window and the message being read.
const StreamWindow = 64 << 10

// ServerOptions are the gRPC server options the service's memory bound
// needs: fixed receive windows (the connection's larger, so that many
// streams move at once; it bounds nothing, the transport frees it on read).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.StaticStreamWindowSize(StreamWindow), grpc.StaticConnWindowSize(16 * StreamWindow)}
}

// Server implements hirez.v1.UpscalerService.
type Server struct {
	pb.UnimplementedUpscalerServiceServer
	svc *upscale.Service
}

var _ pb.UpscalerServiceServer = (*Server)(nil)

// New returns the service's gRPC implementation.
func New(svc *upscale.Service) *Server { return &Server{svc: svc} }

// Upscale implements UpscalerService.Upscale.
func (s *Server) Upscale(ctx context.Context, req *pb.UpscaleRequest) (*pb.UpscaleResponse, error) {
	scale, ok := pb.ValidScale(req.GetScale())
	if !ok {
		return nil, fault.Invalid("scale must be 2 or 4 (0 reads as 2), got %d", req.GetScale())
	}
	n := len(req.GetImages())
	if n < 1 || n > pb.MaxUpscaleBatch {
		return nil, fault.Invalid("the number of images must be between 1 and %d, got %d", pb.MaxUpscaleBatch, n)
	}
	ref, err := modelRef(req.GetModel())
	if err != nil {
		return nil, err
	}
	imgs := make([]*imageio.RGB, n)
	for i, raw := range req.GetImages() {
		if imgs[i], err = rawImage(fmt.Sprintf("images[%d]", i), raw, int(scale)); err != nil {
			return nil, err
		}
	}
	res, err := s.svc.Upscale(ctx, upscale.Request{Images: imgs, Scale: int(scale), Model: ref})
	if err != nil {
		return nil, err
	}
	resp := &pb.UpscaleResponse{Images: make([]*pb.RawImage, len(res))}
	for i, r := range res {
		resp.Images[i] = toRaw(r.Image)
	}
	// One provenance for the call: the passes of the first image stand for all
	// (every image ran the same passes with the same version).
	resp.Provenance = provenance(res[0].Model, res[0].Passes)
	return resp, nil
}

// StreamUpscale implements UpscalerService.StreamUpscale: up to
// MaxStreamUpscaleInFlight images are worked on at once; results are sent as
// they finish. Each distinct ModelRef is resolved on first use and pinned for
// the rest of the stream.
func (s *Server) StreamUpscale(stream pb.UpscalerService_StreamUpscaleServer) error {
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)

	pinned := map[upscale.ModelRef]*hotswap.Ref[*upscale.Model]{}
	defer func() {
		for _, r := range pinned {
			r.Release()
		}
	}()
	var (
		sendMu sync.Mutex
		wg     sync.WaitGroup
		slots  = make(chan struct{}, pb.MaxStreamUpscaleInFlight)
		mu     sync.Mutex
		ids    = map[int64]bool{} // ids in flight
	)
	defer func() { // before the pinned versions are released
		cancel(nil)
		wg.Wait()
	}()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			cancel(err)
			return err
		}
		id := msg.GetId()
		scale, ok := pb.ValidScale(msg.GetScale())
		if !ok {
			return fault.Invalid("message id %d: scale must be 2 or 4 (0 reads as 2), got %d", id, msg.GetScale())
		}
		mref, err := modelRef(msg.GetModel())
		if err != nil {
			return fmt.Errorf("message id %d: %w", id, err)
		}
		img, err := rawImage("image", msg.GetImage(), int(scale))
		if err != nil {
			return fmt.Errorf("message id %d: %w", id, err)
		}
		ref, ok := pinned[mref]
		if !ok {
			if ref, err = s.svc.Acquire(mref); err != nil {
				return fmt.Errorf("message id %d: %w", id, err)
			}
			pinned[mref] = ref
		}
		mu.Lock()
		dup := ids[id]
		ids[id] = true
		mu.Unlock()
		if dup {
			return fault.Invalid("message id %d is already in flight on this stream", id)
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		// Reading on waits while the process's image budget is full: the
		// stream's flow control then holds the client back.
		release, err := s.svc.Admit(ctx, ref.Version, []*imageio.RGB{img}, int(scale))
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("message id %d: %w", id, err)
		}
		wg.Go(func() {
			defer func() { <-slots }()
			defer release() // after Send: until then the result is held
			res, err := s.svc.UpscaleWith(ctx, ref.Version, []*imageio.RGB{img}, int(scale))
			mu.Lock()
			delete(ids, id)
			mu.Unlock()
			if err != nil {
				cancel(fmt.Errorf("message id %d: %w", id, err))
				return
			}
			sendMu.Lock()
			defer sendMu.Unlock()
			if err := stream.Send(&pb.StreamUpscaleResponse{Id: id, Image: toRaw(res[0].Image), Provenance: provenance(res[0].Model, res[0].Passes)}); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
		return err
	}
	return nil
}

func modelRef(ref *pb.ModelRef) (upscale.ModelRef, error) {
	name, version := ref.GetName(), ref.GetVersion()
	if err := limits.CheckRef("model", name, version); err != nil {
		return upscale.ModelRef{}, fault.Invalid("%w", err)
	}
	return upscale.ModelRef{Name: name, Version: version}, nil
}

// rawImage checks the header (sides, channels, byte count) before the pixels
// are used, then wraps them without a copy.
func rawImage(field string, raw *pb.RawImage, scale int) (*imageio.RGB, error) {
	if raw == nil {
		return nil, fault.Invalid("%s is missing", field)
	}
	w, h := int(raw.GetWidth()), int(raw.GetHeight())
	if err := Limits.CheckHeader(field, w, h, int(raw.GetChannels()), len(raw.GetRgb()), scale); err != nil {
		return nil, err
	}
	return &imageio.RGB{W: w, H: h, Pix: raw.GetRgb()}, nil
}

func toRaw(img *imageio.RGB) *pb.RawImage {
	return &pb.RawImage{Rgb: img.Pix, Width: int32(img.W), Height: int32(img.H), Channels: pb.RawImageChannels}
}

func provenance(m upscale.ModelInfo, passes []upscale.Pass) *pb.Provenance {
	p := &pb.Provenance{}
	for _, ps := range passes {
		p.Upscalers = append(p.Upscalers, &pb.ModelRef{Name: m.Name, Version: m.Version})
		p.Timings = append(p.Timings,
			&pb.StageTiming{Stage: "queue", Duration: durationpb.New(ps.Queue)},
			&pb.StageTiming{Stage: "upscale", Duration: durationpb.New(ps.Compute), BatchSize: int32(ps.BatchSize), Backend: m.Backend})
	}
	return p
}

// String is for logs: a short description of the served model.
func String(m upscale.ModelInfo) string {
	return fmt.Sprintf("%s (%s, ×%d) %s on %s", m.Name, m.Preset, m.Scale, m.Version, m.Backend)
}
