// Command upscaler serves hirez.v1.UpscalerService: batched super-resolution.
// Flags and their HIREZ_* environment variables are in docs/operations.md.
package main

import (
	"flag"
	"fmt"

	"go.uber.org/zap"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/platform"
	"github.com/hirez-ml/hirez/platform/hotswap"
	"github.com/hirez-ml/hirez/platform/modelserver"
	"github.com/hirez-ml/hirez/platform/server"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
	"github.com/hirez-ml/hirez/services/upscaler/internal/grpcapi"
	"github.com/hirez-ml/hirez/services/upscaler/internal/upscale"
)

func main() { platform.Main(spec().Run) }

func spec() modelserver.Spec[backend.Backend, *upscale.Model] {
	var mem *upscale.Memory // --tile, --max-inflight-bytes
	return modelserver.Spec[backend.Backend, *upscale.Model]{
		Name: "upscaler", GRPCAddr: ":9002", What: "an upscaler",
		Service: grpcapi.ServiceName, Stage: "upscale",
		Backends: choose.Describe(false), OpenBackend: choose.Open,
		Load: upscale.Loader, Release: upscale.Release,
		Describe: func(v *hotswap.Version[*upscale.Model]) string { return grpcapi.String(upscale.Info(v)) },
		Flags:    func(fs *flag.FlagSet) { mem = upscale.RegisterMemoryFlags(fs) },
		Validate: func() error { return mem.Validate() },
		Fields: func() []zap.Field {
			return []zap.Field{zap.Int("tile", mem.TileSide), zap.Int64("max_inflight_bytes", mem.MaxInFlightBytes)}
		},
		ServerOptions: []server.Option{server.WithGRPCOptions(grpcapi.ServerOptions()...)},
		Start: func(d modelserver.Deps[*upscale.Model]) (modelserver.Service, error) {
			svc, err := upscale.New(d.Holder, d.Batch, grpcapi.Limits, *mem, d.Observer)
			if err != nil {
				return nil, err
			}
			if err := d.Server.Registry().Register(upscale.NewCollector(svc)); err != nil {
				return nil, fmt.Errorf("register in-flight metrics: %w", err)
			}
			pb.RegisterUpscalerServiceServer(d.Server, grpcapi.New(svc))
			return svc, nil
		},
	}
}
