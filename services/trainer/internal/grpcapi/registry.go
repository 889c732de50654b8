package grpcapi

import (
	"context"
	"errors"
	"io"
	"slices"

	"github.com/hirez-ml/hirez/platform/fault"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"

	"github.com/hirez-ml/hirez/services/trainer/internal/page"
	"github.com/hirez-ml/hirez/services/trainer/internal/pubsub"
	"github.com/hirez-ml/hirez/services/trainer/internal/registry"
)

// Registry implements hirez.v1.ModelRegistryService.
type Registry struct {
	pb.UnimplementedModelRegistryServiceServer
	reg  *registry.Registry
	auth Auth
}

var _ pb.ModelRegistryServiceServer = (*Registry)(nil)

// NewRegistry returns the service over reg.
func NewRegistry(reg *registry.Registry, auth Auth) *Registry { return &Registry{reg: reg, auth: auth} }

func refArgs(ref *pb.ModelRef) (string, string, error) {
	if ref == nil || ref.GetName() == "" {
		return "", "", fault.Invalid("ref.name is required")
	}
	return ref.GetName(), ref.GetVersion(), nil
}

// ListModels implements ModelRegistryServiceServer.
func (r *Registry) ListModels(ctx context.Context, req *pb.ListModelsRequest) (*pb.ListModelsResponse, error) {
	size, err := page.Size(req.GetPageSize(), pb.DefaultPageSize, pb.MaxPageSize)
	if err != nil {
		return nil, err
	}
	kind, err := kindFromPB(req.GetKind(), "kind")
	if err != nil {
		return nil, err
	}
	ms, next, err := r.reg.ListModels(ctx, kind, size, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &pb.ListModelsResponse{NextPageToken: next}
	for _, m := range ms {
		out.Models = append(out.Models, modelToPB(m))
	}
	return out, nil
}

// ListModelVersions implements ModelRegistryServiceServer.
func (r *Registry) ListModelVersions(ctx context.Context, req *pb.ListModelVersionsRequest) (*pb.ListModelVersionsResponse, error) {
	size, err := page.Size(req.GetPageSize(), pb.DefaultPageSize, pb.MaxPageSize)
	if err != nil {
		return nil, err
	}
	if req.GetModel() == "" {
		return nil, fault.Invalid("model is required")
	}
	vs, next, err := r.reg.ListVersions(ctx, req.GetModel(), size, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &pb.ListModelVersionsResponse{NextPageToken: next}
	for _, v := range vs {
		out.Versions = append(out.Versions, versionToPB(v))
	}
	return out, nil
}

// GetModelVersion implements ModelRegistryServiceServer.
func (r *Registry) GetModelVersion(ctx context.Context, req *pb.GetModelVersionRequest) (*pb.GetModelVersionResponse, error) {
	name, ver, err := refArgs(req.GetRef())
	if err != nil {
		return nil, err
	}
	v, err := r.reg.Resolve(ctx, name, ver)
	if err != nil {
		return nil, err
	}
	return &pb.GetModelVersionResponse{Version: versionToPB(v)}, nil
}

// SetAlias implements ModelRegistryServiceServer.
func (r *Registry) SetAlias(ctx context.Context, req *pb.SetAliasRequest) (*pb.SetAliasResponse, error) {
	if err := r.auth.Authorize(ctx); err != nil {
		return nil, err
	}
	if req.GetModel() == "" {
		return nil, fault.Invalid("model is required")
	}
	v, prev, err := r.reg.SetAlias(ctx, req.GetModel(), req.GetAlias(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	return &pb.SetAliasResponse{Version: versionToPB(v), PreviousVersion: prev}, nil
}

// PromoteModel implements ModelRegistryServiceServer.
func (r *Registry) PromoteModel(ctx context.Context, req *pb.PromoteModelRequest) (*pb.PromoteModelResponse, error) {
	if err := r.auth.Authorize(ctx); err != nil {
		return nil, err
	}
	if req.GetModel() == "" {
		return nil, fault.Invalid("model is required")
	}
	p, err := r.reg.Promote(ctx, req.GetModel(), req.GetVersion(), req.GetForce())
	if err != nil {
		return nil, err
	}
	c := p.Canary
	return &pb.PromoteModelResponse{
		Promoted: p.Promoted, Version: versionToPB(p.Version), PreviousVersion: p.Previous,
		Canary: &pb.CanaryResult{Metric: c.Metric, HigherIsBetter: c.HigherIsBetter, OldValue: c.Old,
			NewValue: c.Value, Passed: c.Passed, RefusedReason: c.Refusal},
	}, nil
}

// DeleteModelVersion implements ModelRegistryServiceServer.
func (r *Registry) DeleteModelVersion(ctx context.Context, req *pb.DeleteModelVersionRequest) (*pb.DeleteModelVersionResponse, error) {
	if err := r.auth.Authorize(ctx); err != nil {
		return nil, err
	}
	name, ver, err := refArgs(req.GetRef())
	if err != nil {
		return nil, err
	}
	if ver == "" {
		return nil, fault.Invalid("ref.version is required: the digest (sha256:<hex>) of the version to delete")
	}
	v, err := r.reg.Delete(ctx, name, ver)
	if err != nil {
		return nil, err
	}
	return &pb.DeleteModelVersionResponse{Version: versionToPB(v)}, nil
}

// DownloadModel implements ModelRegistryServiceServer.
func (r *Registry) DownloadModel(req *pb.DownloadModelRequest, stream pb.ModelRegistryService_DownloadModelServer) error {
	ctx := stream.Context()
	name, ver, err := refArgs(req.GetRef())
	if err != nil {
		return err
	}
	chunk := int(req.GetChunkSize())
	switch {
	case chunk < 0 || chunk > pb.MaxDownloadChunkBytes:
		return fault.Invalid("chunk_size %d: use 0..%d", chunk, pb.MaxDownloadChunkBytes)
	case chunk == 0:
		chunk = pb.DefaultDownloadChunkBytes
	}
	f, v, err := r.reg.Open(ctx, name, ver)
	if err != nil {
		return err
	}
	defer f.Close()
	off := req.GetOffset()
	if off < 0 || off > v.Size {
		return fault.Invalid("offset %d is outside the file (0..%d)", off, v.Size)
	}
	sum := v.Digest[len(pb.DigestPrefix):]
	buf := make([]byte, chunk)
	first := true
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if n == 0 && !first {
			return nil
		}
		msg := &pb.DownloadModelResponse{Offset: off, Data: slices.Clone(buf[:n]), TotalSize: v.Size, Sha256: sum}
		if first {
			msg.Version = versionToPB(v)
			first = false
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
		off += int64(n)
		if off >= v.Size {
			return nil
		}
	}
}

// WatchModels implements ModelRegistryServiceServer.
func (r *Registry) WatchModels(req *pb.WatchModelsRequest, stream pb.ModelRegistryService_WatchModelsServer) error {
	ctx := stream.Context()
	names := req.GetModels()
	sub, err := r.reg.Watch(ctx, names)
	if err != nil {
		return err
	}
	defer sub.Close()
	for {
		ch, err := sub.Next(ctx)
		if errors.Is(err, pubsub.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		var msg *pb.WatchModelsResponse
		if ch.Event == nil {
			snap := &pb.ModelsSnapshot{}
			for _, m := range ch.Snapshot {
				snap.Models = append(snap.Models, modelToPB(m))
			}
			msg = &pb.WatchModelsResponse{Change: &pb.WatchModelsResponse_Snapshot{Snapshot: snap}}
		} else {
			if len(names) > 0 && !slices.Contains(names, ch.Event.Model) {
				continue
			}
			msg = &pb.WatchModelsResponse{Change: &pb.WatchModelsResponse_Event{Event: modelEventToPB(*ch.Event)}}
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
}
