package grpcapi

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hirez-ml/hirez/platform/fault"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"

	"github.com/hirez-ml/hirez/services/trainer/internal/job"
	"github.com/hirez-ml/hirez/services/trainer/internal/registry"
)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func kindFromPB(k pb.ModelKind, field string) (registry.Kind, error) {
	if _, ok := pb.ModelKind_name[int32(k)]; !ok {
		return 0, fault.Invalid("%s %d is not a known ModelKind (MODEL_KIND_DCGAN_GENERATOR, MODEL_KIND_UPSAMPLER, MODEL_KIND_SRCNN, MODEL_KIND_ESPCN)", field, int32(k))
	}
	return registry.Kind(k), nil
}

func specFromPB(s *pb.JobSpec) (job.Spec, error) {
	if s == nil {
		return job.Spec{}, fault.Invalid("spec is required")
	}
	kind, err := kindFromPB(s.GetModelKind(), "spec.model_kind")
	if err != nil {
		return job.Spec{}, err
	}
	h := s.GetHyperparameters()
	if _, ok := pb.Loss_name[int32(h.GetLoss())]; !ok {
		return job.Spec{}, fault.Invalid("spec.hyperparameters.loss %d is not a known Loss (LOSS_BCE, LOSS_HINGE, LOSS_MSE)", int32(h.GetLoss()))
	}
	out := job.Spec{
		Kind: kind, Preset: s.GetPreset(), Dataset: s.GetDataset(), ImageSize: int(s.GetImageSize()),
		Hyper: job.Hyper{
			GLR: h.GetGeneratorLearningRate(), DLR: h.GetDiscriminatorLearningRate(),
			Beta1: h.GetBeta1(), Beta2: h.GetBeta2(), BatchSize: int(h.GetBatchSize()),
			Epochs: int(h.GetEpochs()), Steps: h.GetSteps(),
			CheckpointEvery: h.GetCheckpointIntervalSteps(), SampleEvery: h.GetSampleIntervalSteps(),
			Loss: job.Loss(h.GetLoss()), EMADecay: h.GetEmaDecay(), DisableEMA: h.GetDisableEma(),
		},
		Backend: s.GetBackend(), ModelName: s.GetModelName(), Seed: s.GetSeed(),
	}
	if f := s.GetInitFrom(); f != nil {
		out.InitFrom = &job.Ref{Name: f.GetName(), Version: f.GetVersion()}
	}
	return out, nil
}

func specToPB(s job.Spec) *pb.JobSpec {
	h := s.Hyper
	out := &pb.JobSpec{
		ModelKind: pb.ModelKind(s.Kind), Preset: s.Preset, Dataset: s.Dataset, ImageSize: int32(s.ImageSize),
		Hyperparameters: &pb.Hyperparameters{
			GeneratorLearningRate: h.GLR, DiscriminatorLearningRate: h.DLR, Beta1: h.Beta1, Beta2: h.Beta2,
			BatchSize: int32(h.BatchSize), Epochs: int32(h.Epochs), Steps: h.Steps,
			CheckpointIntervalSteps: h.CheckpointEvery, SampleIntervalSteps: h.SampleEvery,
			Loss: pb.Loss(h.Loss), EmaDecay: h.EMADecay, DisableEma: h.DisableEMA,
		},
		Backend: s.Backend, ModelName: s.ModelName, Seed: s.Seed,
	}
	if s.InitFrom != nil {
		out.InitFrom = &pb.ModelRef{Name: s.InitFrom.Name, Version: s.InitFrom.Version}
	}
	return out
}

func progressToPB(p job.Progress) *pb.JobProgress {
	out := &pb.JobProgress{
		Step: p.Step, TotalSteps: p.TotalSteps, Epoch: int32(p.Epoch), Losses: p.Losses,
		ImagesPerSecond: p.ImagesPerSec,
	}
	if p.ETA > 0 {
		out.Eta = durationpb.New(p.ETA)
	}
	return out
}

func checkpointToPB(c *job.Checkpoint) *pb.Checkpoint {
	if c == nil {
		return nil
	}
	return &pb.Checkpoint{Step: c.Step, Path: c.Path, CreateTime: ts(c.Time)}
}

func jobToPB(j job.Job) *pb.Job {
	out := &pb.Job{
		Name: j.Name(), Spec: specToPB(j.Spec), State: pb.JobState(j.State), FailureReason: j.Failure,
		Progress: progressToPB(j.Progress), LatestCheckpoint: checkpointToPB(j.Latest),
		Attempts: int32(j.Attempts), CreateTime: ts(j.Created), StartTime: ts(j.Started),
		UpdateTime: ts(j.Updated), EndTime: ts(j.Ended),
	}
	if j.Result != nil {
		out.Result = &pb.ModelRef{Name: j.Result.Name, Version: j.Result.Version}
	}
	return out
}

func eventToPB(e job.Event) *pb.WatchJobResponse {
	out := &pb.WatchJobResponse{Time: ts(e.Time)}
	switch {
	case e.Snapshot != nil:
		out.Event = &pb.WatchJobResponse_Snapshot{Snapshot: jobToPB(*e.Snapshot)}
	case e.Progress != nil:
		out.Event = &pb.WatchJobResponse_Progress{Progress: progressToPB(*e.Progress)}
	case e.Sample != nil:
		s := e.Sample
		out.Event = &pb.WatchJobResponse_Sample{Sample: &pb.SampleGrid{Step: s.Step, Png: s.PNG, Rows: int32(s.Rows), Columns: int32(s.Cols)}}
	case e.Checkpoint != nil:
		out.Event = &pb.WatchJobResponse_Checkpoint{Checkpoint: checkpointToPB(e.Checkpoint)}
	case e.StateChange != nil:
		sc := e.StateChange
		out.Event = &pb.WatchJobResponse_StateChange{StateChange: &pb.StateChange{
			PreviousState: pb.JobState(sc.From), State: pb.JobState(sc.To), Reason: sc.Reason}}
	}
	return out
}

func versionToPB(v registry.Version) *pb.ModelVersion {
	return &pb.ModelVersion{
		Ref: &pb.ModelRef{Name: v.Model, Version: v.Digest}, Kind: pb.ModelKind(v.Kind), Preset: v.Preset,
		Aliases: v.Aliases, SizeBytes: v.Size, ImageSize: int32(v.ImageSize), LatentDim: int32(v.LatentDim),
		SourceJob: v.SourceJob, Metrics: v.Metrics, Metadata: v.Metadata, CreateTime: ts(v.Created),
	}
}

func modelToPB(m registry.Model) *pb.Model {
	return &pb.Model{
		Name: m.Name, Kind: pb.ModelKind(m.Kind), Aliases: m.Aliases, VersionCount: int32(m.VersionCount),
		CreateTime: ts(m.Created), UpdateTime: ts(m.Updated),
	}
}

var eventTypes = map[registry.EventType]pb.ModelEventType{
	registry.VersionCreated: pb.ModelEventType_MODEL_EVENT_TYPE_VERSION_CREATED,
	registry.AliasSet:       pb.ModelEventType_MODEL_EVENT_TYPE_ALIAS_SET,
	registry.AliasRemoved:   pb.ModelEventType_MODEL_EVENT_TYPE_ALIAS_REMOVED,
	registry.VersionDeleted: pb.ModelEventType_MODEL_EVENT_TYPE_VERSION_DELETED,
}

func modelEventToPB(e registry.Event) *pb.ModelEvent {
	return &pb.ModelEvent{Type: eventTypes[e.Type], Model: e.Model, Version: e.Version, Alias: e.Alias,
		PreviousVersion: e.Previous, Time: ts(e.Time)}
}
