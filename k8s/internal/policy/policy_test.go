package policy

import (
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/hirez-ml/hirez/k8s/internal/manifest"
	"github.com/hirez-ml/hirez/k8s/internal/opsdoc"
)

// TestBrokenTLS: a container serving TLS must be probed over HTTP on its
// metrics port, and its TLS files must come from a mounted Secret.
func TestBrokenTLS(t *testing.T) {
	got := strings.Join(check(t, "testdata/broken-tls"), "\n")
	for _, w := range []string{
		`Deployment/generator: container "generator": liveness probe is a gRPC probe, but the gRPC port serves TLS (HIREZ_TLS_CERT) and the kubelet's gRPC probe speaks plaintext; probe the metrics port with httpGet /healthz`,
		`Deployment/generator: container "generator": readiness probe checks port 9001, the metrics port is 9090`,
		`Deployment/generator: container "generator": readiness probe checks "/healthz", want "/readyz"`,
		`Deployment/generator: container "generator": HIREZ_TLS_CERT=/etc/hirez/tls/tls.crt is not in a mounted Secret volume`,
		`Deployment/generator: container "generator": HIREZ_TLS_KEY=/etc/hirez/tls/tls.key is not in a mounted Secret volume`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("missing violation:\n  %s", w)
		}
	}
	if strings.Contains(got, "not a gRPC probe") {
		t.Errorf("a TLS container was asked for gRPC probes:\n%s", got)
	}
}

// TestBrokenBuildFails runs the policy on testdata/broken, a build that breaks the
// rules on purpose, and pins the messages: each names the object and the problem.
func TestBrokenBuildFails(t *testing.T) {
	got := check(t, "testdata/broken")
	want := []string{
		`Deployment/gateway: ServiceAccount "gateway" is not in the build`,
		`Deployment/gateway: container "gateway": image "hirez/gateway" has no tag; pin a version (never latest)`,
		`Deployment/gateway: container "gateway": liveness probe is not a gRPC probe (want grpc: {port: …})`,
		`Deployment/gateway: container "gateway": read-only root filesystem but no emptyDir mounted at /tmp`,
		`Deployment/gateway: container "gateway": readiness probe checks port 9090, the gRPC port is 9000`,
		`Deployment/gateway: container "gateway": readiness probe checks the liveness service, which is SERVING even while draining; leave service empty (overall health)`,
		`Deployment/gateway: selector app.kubernetes.io/name=gw does not match the pod template labels app.kubernetes.io/name=gateway`,
		`Deployment/upscaler: container "upscaler": allowPrivilegeEscalation is not false`,
		`Deployment/upscaler: container "upscaler": capabilities do not drop ALL`,
		`Deployment/upscaler: container "upscaler": environment variable HIREZ_TURBO is not in docs/operations.md`,
		`Deployment/upscaler: container "upscaler": has a GPU but HIREZ_BACKEND is "", want "cuda"`,
		`Deployment/upscaler: container "upscaler": has a GPU but no nodeSelector nvidia.com/gpu.present`,
		`Deployment/upscaler: container "upscaler": has a GPU but the pod does not tolerate the nvidia.com/gpu taint`,
		`Deployment/upscaler: container "upscaler": has an nvidia.com/gpu limit but runs "registry.example/hirez/upscaler:latest", not a -cuda image`,
		`Deployment/upscaler: container "upscaler": image "registry.example/hirez/upscaler:latest" uses the :latest tag; pin a version`,
		`Deployment/upscaler: container "upscaler": liveness probe checks health service "", which follows readiness; want service: liveness (the process only)`,
		`Deployment/upscaler: container "upscaler": no readiness probe`,
		`Deployment/upscaler: container "upscaler": port "grpc" is 9102, docs/operations.md says 9002`,
		`Deployment/upscaler: container "upscaler": readOnlyRootFilesystem is not true`,
		`Deployment/upscaler: container "upscaler": resources missing limits.cpu, limits.memory`,
		`Deployment/upscaler: container "upscaler": runAsNonRoot is not true`,
		`Deployment/upscaler: container "upscaler": seccompProfile is not RuntimeDefault`,
		`Deployment/gateway: HIREZ_UPSCALER_TARGET="dns:///upscaler:9002": Service/upscaler is not headless, so a gRPC client cannot balance per call`,
		`HorizontalPodAutoscaler/upscaler: Deployment/upscaler sets spec.replicas; remove it so applying the manifests does not reset the HPA's scale`,
		`NetworkPolicy/stray: podSelector app.kubernetes.io/name=nothing selects no Deployment's pods`,
		`PodDisruptionBudget/upscaler: minAvailable 2 ≥ the 2 replicas of Deployment/upscaler blocks every node drain`,
		`Service/upscaler: must be headless (clusterIP: None): gRPC keeps long-lived connections, so the gateway balances per call over the pod IPs`,
		`Service/upscaler: port "grpc": targetPort 9002 is not a container port of Deployment/upscaler`,
		`build: no default-deny ingress NetworkPolicy (podSelector: {}, policyTypes: [Ingress], no rules)`,
	}
	have := map[string]bool{}
	for _, g := range got {
		have[g] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("missing violation:\n  %s", w)
		}
		delete(have, w)
	}
	for g := range have {
		t.Errorf("unexpected violation:\n  %s", g)
	}
	if t.Failed() {
		t.Logf("all violations:\n  %s", strings.Join(got, "\n  "))
	}
}

// With ingress denied by default, ports no policy opens are unreachable.
func TestUnopenedPortsFail(t *testing.T) {
	got := strings.Join(check(t, "testdata/broken-denied"), "\n")
	for _, w := range []string{
		`Deployment/gateway: container "gateway": port "grpc" (9000) is not opened by any NetworkPolicy`,
		`Deployment/gateway: container "gateway": port "http" (8080) is not opened by any NetworkPolicy`,
		`Deployment/upscaler: container "upscaler": port "metrics" (9090) is not opened by any NetworkPolicy`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("missing violation:\n  %s", w)
		}
	}
	if strings.Contains(got, "no default-deny") {
		t.Errorf("default-deny reported missing:\n%s", got)
	}
}

func check(t *testing.T, dir string) []string {
	t.Helper()
	doc, err := opsdoc.Load("../../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	b, err := manifest.BuildDir(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range Check(b.Objects, doc) {
		got = append(got, v.String())
	}
	return got
}

func TestImageProblem(t *testing.T) {
	tests := map[string]string{
		"registry.example/hirez/gateway:v0.1.0":  "",
		"registry.example:5000/hirez/gateway:v1": "",
		"hirez/gateway@sha256:abc":               "",
		"registry.example:5000/hirez/gateway":    "has no tag",
		"hirez/gateway":                          "has no tag",
		"hirez/gateway:latest":                   "uses the :latest tag",
		"":                                       "no image",
	}
	for image, want := range tests {
		got := imageProblem(image)
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("imageProblem(%q) = %q, want %q", image, got, want)
		}
	}
}
