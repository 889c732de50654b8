// Command generator serves hirez.v1.GeneratorService: batched DCGAN inference.
// Flags and their HIREZ_* environment variables are in docs/operations.md.
package main

import (
	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/platform"
	"github.com/hirez-ml/hirez/platform/hotswap"
	"github.com/hirez-ml/hirez/platform/modelserver"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
	"github.com/hirez-ml/hirez/services/generator/internal/generate"
	"github.com/hirez-ml/hirez/services/generator/internal/grpcapi"
)

func main() { platform.Main(spec().Run) }

func spec() modelserver.Spec[backend.Backend, *generate.Model] {
	return modelserver.Spec[backend.Backend, *generate.Model]{
		Name: "generator", GRPCAddr: ":9001", What: "a generator",
		Service: grpcapi.ServiceName, Stage: "generate",
		Backends: choose.Describe(false), OpenBackend: choose.Open,
		Load: generate.Loader, Release: generate.Release,
		Describe: func(v *hotswap.Version[*generate.Model]) string { return grpcapi.String(generate.Info(v)) },
		Start: func(d modelserver.Deps[*generate.Model]) (modelserver.Service, error) {
			svc, err := generate.New(d.Holder, d.Batch, generate.Limits{MaxCount: pb.MaxStreamGenerateCount, MaxLatentDim: pb.MaxLatentDim}, d.Observer)
			if err != nil {
				return nil, err
			}
			pb.RegisterGeneratorServiceServer(d.Server, grpcapi.New(svc))
			return svc, nil
		},
	}
}
