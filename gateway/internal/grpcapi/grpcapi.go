// Package grpcapi is the gateway's transport: GatewayService over gRPC and the
// same two calls as HTTP/JSON (protojson bodies, hand-mapped routes). It is the
// only package of the gateway that converts hirez.v1 messages to and from the
// pipeline domain. Errors are domain faults or downstream statuses; the
// platform's interceptor (gRPC) and HTTPStatus (HTTP) map them in one place.
package grpcapi

import (
	"context"
	"net"

	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hirez-ml/hirez/gateway/internal/pipeline"
	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/proto/hirez/limits"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// ServiceName is the full gRPC service name.
const ServiceName = "hirez.v1.GatewayService"

// Limits are the API's limits as the pipeline reads them.
var Limits = pipeline.Limits{
	MaxCount:        pb.MaxGatewayCount,
	MinSize:         pb.MinImageSize,
	MaxSize:         pb.MaxImageSize,
	DefaultSize:     pb.DefaultImageSize,
	MaxEncodedBytes: pb.MaxEncodedImageBytes,
	MaxInputSide:    pb.MaxUpscaleInputSide,
	MaxOutputSide:   pb.MaxUpscaleOutputSide,
	Scales:          []int{2, 4},
}

// Server implements hirez.v1.GatewayService.
type Server struct {
	pb.UnimplementedGatewayServiceServer
	svc *pipeline.Service
}

var _ pb.GatewayServiceServer = (*Server)(nil)

// New returns the gateway's gRPC implementation.
func New(svc *pipeline.Service) *Server { return &Server{svc: svc} }

// GenerateImages implements GatewayService.GenerateImages.
func (s *Server) GenerateImages(req *pb.GenerateImagesRequest, stream pb.GatewayService_GenerateImagesServer) error {
	r, err := ToRequest(req)
	if err != nil {
		return err
	}
	if p, ok := peer.FromContext(stream.Context()); ok && p.Addr != nil {
		r.Client = clientKey(p.Addr.String())
	}
	return s.svc.GenerateImages(stream.Context(), r, func(img pipeline.Image) error {
		return stream.Send(ToResponse(img))
	})
}

// clientKey is the fairness key of a caller at addr: its host, so that the
// streams of one client (several connections or ports) share one turn.
// Behind a proxy every caller shares the proxy's host; requests are then
// still served in turn, only not grouped by client.
func clientKey(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// Upscale implements GatewayService.Upscale.
func (s *Server) Upscale(ctx context.Context, req *pb.GatewayServiceUpscaleRequest) (*pb.GatewayServiceUpscaleResponse, error) {
	ref, err := modelRef(req.GetModel(), "model")
	if err != nil {
		return nil, err
	}
	img, err := s.svc.Upscale(ctx, req.GetImage(), int(req.GetScale()), ref)
	if err != nil {
		return nil, err
	}
	return &pb.GatewayServiceUpscaleResponse{
		Png: img.PNG, Width: int32(img.RGB.W), Height: int32(img.RGB.H), Provenance: ToProvenance(img.Prov),
	}, nil
}

// ListLabels implements GatewayService.ListLabels.
func (s *Server) ListLabels(ctx context.Context, req *pb.GatewayServiceListLabelsRequest) (*pb.GatewayServiceListLabelsResponse, error) {
	k, err := pipelineKind(req.GetPipeline())
	if err != nil {
		return nil, err
	}
	gen, err := modelRef(req.GetGenerator(), "generator")
	if err != nil {
		return nil, err
	}
	l, err := s.svc.ListLabels(ctx, k, gen)
	if err != nil {
		return nil, err
	}
	return &pb.GatewayServiceListLabelsResponse{
		Generator: &pb.ModelRef{Name: l.Generator.Name, Version: l.Generator.Version},
		Labels:    l.Labels,
	}, nil
}

// pipelineKind checks that p is a known enum value and converts it.
func pipelineKind(p pb.Pipeline) (pipeline.Kind, error) {
	if _, known := pb.Pipeline_name[int32(p)]; !known {
		return 0, fault.Invalid("pipeline %d is not a known pipeline; use PIPELINE_DCGAN_SRCNN (1), PIPELINE_MULTISTAGE_GAN (2) or PIPELINE_SINGLE_DCGAN (3)", int32(p))
	}
	return toKind(p), nil
}

// ToRequest validates the fields a message alone decides (enums, names, the
// label's length) and converts it; the pipeline checks the rest, and the
// generator whether it knows the label.
func ToRequest(req *pb.GenerateImagesRequest) (pipeline.Request, error) {
	kind, err := pipelineKind(req.GetPipeline())
	if err != nil {
		return pipeline.Request{}, err
	}
	if n := len(req.GetLabel()); n > pb.MaxLabelLength {
		return pipeline.Request{}, fault.Invalid("label is %d bytes; at most %d are allowed", n, pb.MaxLabelLength)
	}
	gen, err := modelRef(req.GetGenerator(), "generator")
	if err != nil {
		return pipeline.Request{}, err
	}
	up, err := modelRef(req.GetUpscaler(), "upscaler")
	if err != nil {
		return pipeline.Request{}, err
	}
	return pipeline.Request{
		Count:     int(req.GetCount()),
		Seed:      req.GetSeed(),
		Pipeline:  kind,
		Size:      int(req.GetSize()),
		Generator: gen,
		Upscaler:  up,
		Label:     req.GetLabel(),
		Previews:  req.GetPreviews(),
	}, nil
}

func toKind(p pb.Pipeline) pipeline.Kind {
	switch p {
	case pb.Pipeline_PIPELINE_DCGAN_SRCNN:
		return pipeline.DCGANSRCNN
	case pb.Pipeline_PIPELINE_MULTISTAGE_GAN:
		return pipeline.MultiStage
	case pb.Pipeline_PIPELINE_SINGLE_DCGAN:
		return pipeline.SingleDCGAN
	}
	return pipeline.Default
}

func fromKind(k pipeline.Kind) pb.Pipeline {
	switch k {
	case pipeline.DCGANSRCNN:
		return pb.Pipeline_PIPELINE_DCGAN_SRCNN
	case pipeline.MultiStage:
		return pb.Pipeline_PIPELINE_MULTISTAGE_GAN
	case pipeline.SingleDCGAN:
		return pb.Pipeline_PIPELINE_SINGLE_DCGAN
	}
	return pb.Pipeline_PIPELINE_UNSPECIFIED
}

func fromStage(st pipeline.Stage) pb.PreviewStage {
	switch st {
	case pipeline.FromGenerator:
		return pb.PreviewStage_PREVIEW_STAGE_GENERATOR
	case pipeline.FromUpscale:
		return pb.PreviewStage_PREVIEW_STAGE_UPSCALE
	}
	return pb.PreviewStage_PREVIEW_STAGE_UNSPECIFIED
}

func modelRef(ref *pb.ModelRef, field string) (pipeline.ModelRef, error) {
	name, version := ref.GetName(), ref.GetVersion()
	if err := limits.CheckRef(field, name, version); err != nil {
		return pipeline.ModelRef{}, fault.Invalid("%w", err)
	}
	return pipeline.ModelRef{Name: name, Version: version}, nil
}

// ToResponse converts a finished image, or a preview to a message with only
// its preview field set.
func ToResponse(img pipeline.Image) *pb.GenerateImagesResponse {
	if img.Stage != pipeline.Final {
		return &pb.GenerateImagesResponse{Preview: &pb.ImagePreview{
			Index: int32(img.Index),
			Seed:  img.Seed,
			Side:  int32(img.RGB.W),
			Png:   img.PNG,
			Stage: fromStage(img.Stage),
			Pass:  int32(img.Pass),
		}}
	}
	return &pb.GenerateImagesResponse{
		Png:        img.PNG,
		Width:      int32(img.RGB.W),
		Height:     int32(img.RGB.H),
		Seed:       img.Seed,
		Index:      int32(img.Index),
		Provenance: ToProvenance(img.Prov),
	}
}

// ToProvenance converts provenance to the wire form.
func ToProvenance(p pipeline.Provenance) *pb.Provenance {
	out := &pb.Provenance{
		Seed:       p.Seed,
		FromLatent: p.FromLatent,
		LatentDim:  int32(p.LatentDim),
		Pipeline:   fromKind(p.Pipeline),
		Label:      p.Label,
	}
	if p.Generator != (pipeline.ModelRef{}) {
		out.Generator = &pb.ModelRef{Name: p.Generator.Name, Version: p.Generator.Version}
	}
	for _, u := range p.Upscalers {
		out.Upscalers = append(out.Upscalers, &pb.ModelRef{Name: u.Name, Version: u.Version})
	}
	for _, t := range p.Timings {
		out.Timings = append(out.Timings, &pb.StageTiming{Stage: t.Stage, Duration: durationpb.New(t.Duration), BatchSize: int32(t.BatchSize), Backend: t.Backend})
	}
	return out
}
