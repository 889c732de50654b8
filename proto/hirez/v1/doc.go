// Package hirezv1 holds the hirez gRPC API (package hirez.v1): the generated
// messages and service stubs, and (forwarded from proto/hirez/limits, which
// has no generated code) the limits every server enforces.
//
// Everything here is generated from the .proto files next to it except
// doc.go, limits.go and their tests, which are written by hand; regenerate
// with `make generate` (see proto/README.md).
package hirezv1
