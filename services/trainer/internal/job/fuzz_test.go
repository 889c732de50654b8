package job_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/hirez-ml/hirez/platform/fault"

	"github.com/hirez-ml/hirez/services/trainer/internal/job"
	"github.com/hirez-ml/hirez/services/trainer/internal/registry"
)

// FuzzSpec decodes a job spec as the store keeps it (JSON; a spec arrives as
// a JobSpec whose fields map one to one) and validates it: Validate must
// accept it or return a KindInvalid error, never panic; an accepted spec must
// survive a JSON round trip, and filling in its recipe's defaults
// (Recipe.Effective, what the job then trains with) must keep it valid.
func FuzzSpec(f *testing.F) {
	dir := f.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "datasets", "emoji"), 0o755); err != nil {
		f.Fatal(err)
	}
	env := job.Env{DataDir: dir, Unavailable: func(backend string) string {
		if backend == "cuda" {
			return "not built in"
		}
		return ""
	}}
	for _, s := range []job.Spec{
		{Kind: registry.KindDCGANGenerator, Preset: "study", Dataset: "emoji", ModelName: "dcgan-emoji"},
		{Kind: registry.KindUpsampler, Preset: "stable", Dataset: "datasets/emoji", ImageSize: 64, ModelName: "up",
			Hyper: job.Hyper{GLR: 1e-4, DLR: 2e-4, Beta1: 0.5, EMADecay: 0.99, Loss: job.LossHinge, Steps: 10}},
		{Kind: registry.KindSRCNN, Preset: "srcnn-classic", Dataset: "emoji", ModelName: "sr", Backend: "cpu",
			Hyper:    job.Hyper{BatchSize: 8, Epochs: 2, CheckpointEvery: 5, SampleEvery: 5, Loss: job.LossMSE, DisableEMA: true},
			InitFrom: &job.Ref{Name: "sr", Version: "production"}},
		{Kind: registry.KindESPCN, Preset: "x2", Dataset: "../etc", ModelName: "Bad Name", Backend: "cuda"},
	} {
		b, err := json.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s job.Spec
		if err := json.Unmarshal(data, &s); err != nil {
			return
		}
		err := env.Validate(context.Background(), s)
		if err != nil {
			if fault.KindOf(err) != fault.KindInvalid {
				t.Fatalf("Validate: %v is a %v fault, want KindInvalid", err, fault.KindOf(err))
			}
			return
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("marshal an accepted spec: %v", err)
		}
		var back job.Spec
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, s) {
			t.Fatalf("JSON round trip: %v\n%+v\n%+v", err, s, back)
		}
		rec, ok := job.LookupRecipe(s.Kind, s.Preset)
		if !ok {
			t.Fatalf("Validate accepted preset %q with no recipe for %v", s.Preset, s.Kind)
		}
		eff := s
		eff.Hyper = rec.Effective(s.Hyper)
		if err := env.Validate(context.Background(), eff); err != nil {
			t.Fatalf("the effective hyperparameters %+v of a valid spec are invalid: %v", eff.Hyper, err)
		}
	})
}
