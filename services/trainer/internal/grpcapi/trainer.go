// Package grpcapi is the trainer's transport: it converts hirez.v1 messages to the
// domain (packages job and registry) and back, checks write access, and is the
// only trainer package that imports gRPC. Domain errors are returned as they
// are; the platform's interceptor maps them to statuses (package rpcerr).
package grpcapi

import (
	"context"
	"errors"
	"strings"

	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/proto/hirez/limits"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"

	"github.com/hirez-ml/hirez/services/trainer/internal/job"
	"github.com/hirez-ml/hirez/services/trainer/internal/page"
	"github.com/hirez-ml/hirez/services/trainer/internal/pubsub"
)

// Trainer implements hirez.v1.TrainerService.
type Trainer struct {
	pb.UnimplementedTrainerServiceServer
	jobs *job.Manager
	auth Auth
}

var _ pb.TrainerServiceServer = (*Trainer)(nil)

// NewTrainer returns the service over jobs.
func NewTrainer(jobs *job.Manager, auth Auth) *Trainer { return &Trainer{jobs: jobs, auth: auth} }

// jobID reads a resource name "jobs/{id}".
func jobID(name string) (string, error) {
	id, ok := strings.CutPrefix(name, "jobs/")
	if !ok || !limits.ValidName(id) {
		return "", fault.Invalid("name %q: want \"jobs/<id>\" with an id of %s", name, limits.NameRule)
	}
	return id, nil
}

// CreateJob implements TrainerServiceServer.
func (t *Trainer) CreateJob(ctx context.Context, req *pb.CreateJobRequest) (*pb.CreateJobResponse, error) {
	if err := t.auth.Authorize(ctx); err != nil {
		return nil, err
	}
	spec, err := specFromPB(req.GetSpec())
	if err != nil {
		return nil, err
	}
	j, err := t.jobs.Create(ctx, req.GetJobId(), spec)
	if err != nil {
		return nil, err
	}
	return &pb.CreateJobResponse{Job: jobToPB(j)}, nil
}

// GetJob implements TrainerServiceServer.
func (t *Trainer) GetJob(ctx context.Context, req *pb.GetJobRequest) (*pb.GetJobResponse, error) {
	id, err := jobID(req.GetName())
	if err != nil {
		return nil, err
	}
	j, err := t.jobs.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return &pb.GetJobResponse{Job: jobToPB(j)}, nil
}

// ListJobs implements TrainerServiceServer.
func (t *Trainer) ListJobs(ctx context.Context, req *pb.ListJobsRequest) (*pb.ListJobsResponse, error) {
	size, err := page.Size(req.GetPageSize(), pb.DefaultPageSize, pb.MaxPageSize)
	if err != nil {
		return nil, err
	}
	var states []job.State
	for _, s := range req.GetStates() {
		if _, ok := pb.JobState_name[int32(s)]; !ok || s == pb.JobState_JOB_STATE_UNSPECIFIED {
			return nil, fault.Invalid("states: %d is not a known JobState", int32(s))
		}
		states = append(states, job.State(s))
	}
	jobs, next, err := t.jobs.List(ctx, states, size, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &pb.ListJobsResponse{NextPageToken: next}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, jobToPB(j))
	}
	return out, nil
}

// CancelJob implements TrainerServiceServer.
func (t *Trainer) CancelJob(ctx context.Context, req *pb.CancelJobRequest) (*pb.CancelJobResponse, error) {
	if err := t.auth.Authorize(ctx); err != nil {
		return nil, err
	}
	id, err := jobID(req.GetName())
	if err != nil {
		return nil, err
	}
	j, err := t.jobs.Cancel(ctx, id)
	if err != nil {
		return nil, err
	}
	return &pb.CancelJobResponse{Job: jobToPB(j)}, nil
}

// ResumeJob implements TrainerServiceServer.
func (t *Trainer) ResumeJob(ctx context.Context, req *pb.ResumeJobRequest) (*pb.ResumeJobResponse, error) {
	if err := t.auth.Authorize(ctx); err != nil {
		return nil, err
	}
	id, err := jobID(req.GetName())
	if err != nil {
		return nil, err
	}
	j, err := t.jobs.Resume(ctx, id)
	if err != nil {
		return nil, err
	}
	return &pb.ResumeJobResponse{Job: jobToPB(j)}, nil
}

// WatchJob implements TrainerServiceServer.
func (t *Trainer) WatchJob(req *pb.WatchJobRequest, stream pb.TrainerService_WatchJobServer) error {
	ctx := stream.Context()
	id, err := jobID(req.GetName())
	if err != nil {
		return err
	}
	sub, err := t.jobs.Watch(ctx, id)
	if err != nil {
		return err
	}
	defer sub.Close()
	for {
		ev, err := sub.Next(ctx)
		if errors.Is(err, pubsub.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(eventToPB(ev)); err != nil {
			return err
		}
	}
}
