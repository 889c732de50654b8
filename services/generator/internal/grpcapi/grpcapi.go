// Package grpcapi is the generator's transport: it converts hirez.v1 messages
// to and from the generate domain and is the only package of the service that
// imports generated code. Errors are returned as domain faults; the platform's
// server interceptor maps them to statuses in one place (platform/rpcerr).
package grpcapi

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/proto/hirez/limits"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
	"github.com/hirez-ml/hirez/services/generator/internal/generate"
)

// ServiceName is the full gRPC service name, also its health-check name.
const ServiceName = "hirez.v1.GeneratorService"

// Server implements hirez.v1.GeneratorService.
type Server struct {
	pb.UnimplementedGeneratorServiceServer
	svc *generate.Service
}

var _ pb.GeneratorServiceServer = (*Server)(nil)

// New returns the service's gRPC implementation.
func New(svc *generate.Service) *Server { return &Server{svc: svc} }

// Generate implements GeneratorService.Generate.
func (s *Server) Generate(ctx context.Context, req *pb.GenerateRequest) (*pb.GenerateResponse, error) {
	r, err := toRequest(req.GetSeeds(), req.GetLatents(), req.GetModel(), req.GetLabel(), pb.MaxGenerateCount)
	if err != nil {
		return nil, err
	}
	resp := &pb.GenerateResponse{Images: make([]*pb.GeneratedImage, 0, r.Count())}
	err = s.svc.Generate(ctx, r, func(img generate.Image) error {
		resp.Images = append(resp.Images, toImage(img))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// StreamGenerate implements GeneratorService.StreamGenerate: each image is sent
// as soon as it and every image before it are done.
func (s *Server) StreamGenerate(req *pb.StreamGenerateRequest, stream pb.GeneratorService_StreamGenerateServer) error {
	r, err := toRequest(req.GetSeeds(), req.GetLatents(), req.GetModel(), req.GetLabel(), pb.MaxStreamGenerateCount)
	if err != nil {
		return err
	}
	return s.svc.Generate(stream.Context(), r, func(img generate.Image) error {
		return stream.Send(&pb.StreamGenerateResponse{Image: toImage(img)})
	})
}

// ListLabels implements GeneratorService.ListLabels.
func (s *Server) ListLabels(_ context.Context, req *pb.ListLabelsRequest) (*pb.ListLabelsResponse, error) {
	ref, err := ModelRef(req.GetModel(), "model")
	if err != nil {
		return nil, err
	}
	info, err := s.svc.Labels(ref)
	if err != nil {
		return nil, err
	}
	return &pb.ListLabelsResponse{
		Model:  &pb.ModelRef{Name: info.Name, Version: info.Version},
		Labels: info.Labels,
	}, nil
}

// toRequest validates what the message alone decides and converts it.
func toRequest(seeds []int64, latents []*pb.Latent, ref *pb.ModelRef, label string, maxCount int) (generate.Request, error) {
	n := len(seeds) + len(latents)
	switch {
	case len(seeds) > 0 && len(latents) > 0:
		return generate.Request{}, fault.Invalid("give seeds or latents, not both (got %d seeds and %d latents)", len(seeds), len(latents))
	case n < 1 || n > maxCount:
		return generate.Request{}, fault.Invalid("the number of seeds or latents must be between 1 and %d, got %d", maxCount, n)
	}
	mref, err := ModelRef(ref, "model")
	if err != nil {
		return generate.Request{}, err
	}
	if err := Label(label); err != nil {
		return generate.Request{}, err
	}
	r := generate.Request{Seeds: seeds, Model: mref, Label: label}
	for i, l := range latents {
		if len(l.GetValues()) > pb.MaxLatentDim {
			return generate.Request{}, fault.Invalid("latents[%d] has %d values; at most %d are allowed", i, len(l.GetValues()), pb.MaxLatentDim)
		}
		r.Latents = append(r.Latents, l.GetValues())
	}
	return r, nil
}

// ModelRef checks a ModelRef's fields against the API's patterns.
func ModelRef(ref *pb.ModelRef, field string) (generate.ModelRef, error) {
	name, version := ref.GetName(), ref.GetVersion()
	if err := limits.CheckRef(field, name, version); err != nil {
		return generate.ModelRef{}, fault.Invalid("%w", err)
	}
	return generate.ModelRef{Name: name, Version: version}, nil
}

// Label checks a request's label against the API's bound; whether the model
// knows it is the domain's check, on the version that serves the call.
func Label(label string) error {
	if len(label) > pb.MaxLabelLength {
		return fault.Invalid("label is %d bytes; at most %d are allowed", len(label), pb.MaxLabelLength)
	}
	return nil
}

func toImage(img generate.Image) *pb.GeneratedImage {
	return &pb.GeneratedImage{
		Index: int32(img.Index),
		Image: &pb.RawImage{Rgb: img.RGB.Pix, Width: int32(img.RGB.W), Height: int32(img.RGB.H), Channels: pb.RawImageChannels},
		Provenance: &pb.Provenance{
			Seed:       img.Seed,
			FromLatent: img.FromLatent,
			LatentDim:  int32(img.Model.LatentDim),
			Generator:  &pb.ModelRef{Name: img.Model.Name, Version: img.Model.Version},
			Pipeline:   pb.Pipeline_PIPELINE_SINGLE_DCGAN,
			Label:      img.Label,
			Timings: []*pb.StageTiming{
				{Stage: "queue", Duration: durationpb.New(img.Queue)},
				{Stage: "generate", Duration: durationpb.New(img.Compute), BatchSize: int32(img.BatchSize), Backend: img.Model.Backend},
			},
		},
	}
}

// String is for logs: a short description of the served model.
func String(m generate.ModelInfo) string {
	labels := "no labels"
	if len(m.Labels) > 0 {
		labels = fmt.Sprintf("labels %q", m.Labels)
	}
	return fmt.Sprintf("%s (%s, %d px, z=%d, %s) %s on %s", m.Name, m.Preset, m.Side, m.LatentDim, labels, m.Version, m.Backend)
}
