// Package k8s holds the hirez Kubernetes manifests (base, overlays, components)
// and the tests that hold them, the Dockerfiles in build/docker and the contract in
// docs/operations.md to one policy. See docs/kubernetes.md.
package k8s
