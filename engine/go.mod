module github.com/hirez-ml/hirez/engine

go 1.26.0

require (
	golang.org/x/image v0.48.0
	gorgonia.org/cu v0.9.6
)

require (
	github.com/google/uuid v1.1.1 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	// Not imported: gorgonia.org/cu's old go.mod (no graph pruning) reaches
	// genproto of 2020 through gorgonia and arrow, and in the workspace that
	// monolith and the split google.golang.org/genproto/googleapis/rpc (gRPC's)
	// both provide googleapis/rpc/status: "ambiguous import" in every gRPC
	// module. A post-split monolith provides no googleapis/rpc. go mod tidy
	// drops this line; keep it (make test fails without it).
	google.golang.org/genproto v0.0.0-20261026165753-2ffab32bce7e // indirect
)
