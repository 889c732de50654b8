// Package policy is the rule book for hirez manifests: what every rendered
// overlay must satisfy (pinned images, gRPC probes, resources, a locked-down
// securityContext, selectors and ports that line up, the ports and HIREZ_*
// variables of docs/operations.md, GPU scheduling that matches the image). Each
// violation names the object (Kind/name) and what is wrong with it.
package policy

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/hirez-ml/hirez/k8s/internal/manifest"
	"github.com/hirez-ml/hirez/k8s/internal/opsdoc"
)

// GPUResource is the extended resource the NVIDIA device plugin advertises.
const GPUResource corev1.ResourceName = "nvidia.com/gpu"

// LivenessService is the health service every hirez server answers SERVING
// while its process answers (platform/server.LivenessService).
const LivenessService = "liveness"

func grpcService(p *corev1.Probe) string {
	if p.GRPC.Service == nil {
		return ""
	}
	return *p.GRPC.Service
}

// Violation is one broken rule.
type Violation struct {
	Ref string // "Deployment/gateway", or "build" for the build as a whole
	Msg string
}

func (v Violation) String() string { return v.Ref + ": " + v.Msg }

// Check applies every rule to the objects of one build.
func Check(objs []manifest.Object, doc opsdoc.Doc) []Violation {
	c := checker{doc: doc, cfg: map[string]*corev1.ConfigMap{}, sa: map[string]bool{}, pvc: map[string]bool{}, svc: map[string]*corev1.Service{}}
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			c.deploys = append(c.deploys, v)
		case *corev1.Service:
			c.svc[v.Name] = v
			c.services = append(c.services, v)
		case *corev1.ConfigMap:
			c.cfg[v.Name] = v
		case *corev1.ServiceAccount:
			c.sa[v.Name] = true
		case *corev1.PersistentVolumeClaim:
			c.pvc[v.Name] = true
		case *autoscalingv2.HorizontalPodAutoscaler:
			c.hpas = append(c.hpas, v)
		case *policyv1.PodDisruptionBudget:
			c.pdbs = append(c.pdbs, v)
		case *networkingv1.NetworkPolicy:
			c.netpols = append(c.netpols, v)
		}
	}
	for _, d := range c.deploys {
		c.deployment(d)
	}
	for _, s := range c.services {
		c.service(s)
	}
	c.dialTargets()
	for _, h := range c.hpas {
		c.hpa(h)
	}
	for _, p := range c.pdbs {
		c.pdb(p)
	}
	c.networkPolicies()
	sort.Slice(c.out, func(i, j int) bool {
		if c.out[i].Ref != c.out[j].Ref {
			return c.out[i].Ref < c.out[j].Ref
		}
		return c.out[i].Msg < c.out[j].Msg
	})
	return c.out
}

type checker struct {
	doc      opsdoc.Doc
	deploys  []*appsv1.Deployment
	services []*corev1.Service
	svc      map[string]*corev1.Service
	cfg      map[string]*corev1.ConfigMap
	sa, pvc  map[string]bool
	hpas     []*autoscalingv2.HorizontalPodAutoscaler
	pdbs     []*policyv1.PodDisruptionBudget
	netpols  []*networkingv1.NetworkPolicy
	out      []Violation
}

func (c *checker) add(ref, format string, args ...any) {
	c.out = append(c.out, Violation{Ref: ref, Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) deployment(d *appsv1.Deployment) {
	ref := "Deployment/" + d.Name
	tmpl := labels.Set(d.Spec.Template.Labels)
	if sel, err := selector(d.Spec.Selector); err != nil {
		c.add(ref, "selector: %v", err)
	} else if !sel.Matches(tmpl) {
		c.add(ref, "selector %s does not match the pod template labels %v", sel, tmpl)
	}
	pod := &d.Spec.Template.Spec
	if name := pod.ServiceAccountName; name == "" {
		c.add(ref, "no serviceAccountName (one ServiceAccount per service)")
	} else if !c.sa[name] {
		c.add(ref, "ServiceAccount %q is not in the build", name)
	}
	for _, v := range pod.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil && !c.pvc[v.PersistentVolumeClaim.ClaimName]:
			c.add(ref, "volume %q: PersistentVolumeClaim %q is not in the build", v.Name, v.PersistentVolumeClaim.ClaimName)
		case v.ConfigMap != nil && c.cfg[v.ConfigMap.Name] == nil && !isTrue(v.ConfigMap.Optional):
			c.add(ref, "volume %q: ConfigMap %q is not in the build", v.Name, v.ConfigMap.Name)
		}
	}
	for _, ct := range pod.InitContainers {
		c.container(ref, pod, ct, false)
	}
	for _, ct := range pod.Containers {
		c.container(ref, pod, ct, true)
	}
}

func (c *checker) container(ref string, pod *corev1.PodSpec, ct corev1.Container, main bool) {
	cref := fmt.Sprintf("container %q", ct.Name)
	if msg := imageProblem(ct.Image); msg != "" {
		c.add(ref, "%s: %s", cref, msg)
	}
	var missing []string
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := ct.Resources.Requests[r]; !ok {
			missing = append(missing, "requests."+string(r))
		}
		if _, ok := ct.Resources.Limits[r]; !ok {
			missing = append(missing, "limits."+string(r))
		}
	}
	if len(missing) > 0 {
		c.add(ref, "%s: resources missing %s", cref, strings.Join(missing, ", "))
	}
	c.security(ref, cref, pod, ct)

	env, problems := c.env(ct)
	for _, msg := range problems {
		c.add(ref, "%s: %s", cref, msg)
	}
	for name := range env {
		if strings.HasPrefix(name, "HIREZ_") && !c.doc.Env[name] {
			c.add(ref, "%s: environment variable %s is not in docs/operations.md", cref, name)
		}
	}
	if !main {
		return
	}

	// Ports: exactly the ones docs/operations.md lists for the binary of this name.
	bin, known := c.doc.Binaries[ct.Name]
	if !known {
		c.add(ref, "%s: not a server in docs/operations.md (container names are binary names)", cref)
	} else {
		got := map[string]int32{}
		for _, p := range ct.Ports {
			got[p.Name] = p.ContainerPort
		}
		for name, want := range bin.Ports {
			if p, ok := got[name]; !ok {
				c.add(ref, "%s: no port named %q (docs/operations.md: %d)", cref, name, want)
			} else if p != want {
				c.add(ref, "%s: port %q is %d, docs/operations.md says %d", cref, name, p, want)
			}
		}
		for name, p := range got {
			if _, ok := bin.Ports[name]; !ok {
				c.add(ref, "%s: port %q (%d) is not in docs/operations.md", cref, name, p)
			}
		}
	}

	// Probes: every serving container answers grpc.health.v1 natively, unless
	// its gRPC port serves TLS: the kubelet's gRPC probe speaks plaintext
	// only, so such a container is probed over HTTP on its plaintext metrics
	// port, whose /healthz and /readyz answer the same two questions.
	if len(ct.Ports) > 0 {
		if env["HIREZ_TLS_CERT"] != "" {
			c.httpProbes(ref, cref, ct, env)
		} else {
			c.grpcProbes(ref, cref, ct)
		}
	}
	c.tlsFiles(ref, cref, pod, ct, env)

	// GPU: the limit, the CUDA image, the backend and the scheduling go together.
	_, gpu := ct.Resources.Limits[GPUResource]
	cuda := strings.HasSuffix(imageRepo(ct.Image), "-cuda")
	switch {
	case gpu && !cuda:
		c.add(ref, "%s: has an %s limit but runs %q, not a -cuda image", cref, GPUResource, ct.Image)
	case !gpu && cuda:
		c.add(ref, "%s: runs the CUDA image %q without an %s limit (it cannot start without a GPU)", cref, ct.Image, GPUResource)
	}
	if gpu {
		if env["HIREZ_BACKEND"] != "cuda" {
			c.add(ref, "%s: has a GPU but HIREZ_BACKEND is %q, want \"cuda\"", cref, env["HIREZ_BACKEND"])
		}
		if !slices.ContainsFunc(pod.Tolerations, func(t corev1.Toleration) bool { return t.Key == string(GPUResource) }) {
			c.add(ref, "%s: has a GPU but the pod does not tolerate the %s taint", cref, GPUResource)
		}
		if _, ok := pod.NodeSelector["nvidia.com/gpu.present"]; !ok {
			c.add(ref, "%s: has a GPU but no nodeSelector nvidia.com/gpu.present", cref)
		}
	}
}

func (c *checker) security(ref, cref string, pod *corev1.PodSpec, ct corev1.Container) {
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := ct.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	nonRoot := psc.RunAsNonRoot
	if sc.RunAsNonRoot != nil {
		nonRoot = sc.RunAsNonRoot
	}
	if !isTrue(nonRoot) {
		c.add(ref, "%s: runAsNonRoot is not true", cref)
	}
	if uid := firstInt64(sc.RunAsUser, psc.RunAsUser); uid != nil && *uid == 0 {
		c.add(ref, "%s: runAsUser is 0 (root)", cref)
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		c.add(ref, "%s: readOnlyRootFilesystem is not true", cref)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		c.add(ref, "%s: allowPrivilegeEscalation is not false", cref)
	}
	if isTrue(sc.Privileged) {
		c.add(ref, "%s: privileged", cref)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		c.add(ref, "%s: capabilities do not drop ALL", cref)
	} else if len(sc.Capabilities.Add) > 0 {
		c.add(ref, "%s: adds capabilities %v", cref, sc.Capabilities.Add)
	}
	seccomp := psc.SeccompProfile
	if sc.SeccompProfile != nil {
		seccomp = sc.SeccompProfile
	}
	if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
		c.add(ref, "%s: seccompProfile is not RuntimeDefault", cref)
	}
	// A read-only root still needs a scratch directory: os.TempDir, oneDNN, the
	// CUDA JIT cache.
	if isTrue(sc.ReadOnlyRootFilesystem) {
		ok := false
		for _, m := range ct.VolumeMounts {
			if m.MountPath == "/tmp" && slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name && v.EmptyDir != nil }) {
				ok = true
			}
		}
		if !ok {
			c.add(ref, "%s: read-only root filesystem but no emptyDir mounted at /tmp", cref)
		}
	}
}

// env returns the container's effective environment: envFrom ConfigMaps in order,
// then env. Values that come from elsewhere (secrets, the downward API) are "".
// Missing ConfigMaps come back as problems.
func (c *checker) env(ct corev1.Container) (env map[string]string, problems []string) {
	env = map[string]string{}
	for _, src := range ct.EnvFrom {
		if src.ConfigMapRef == nil {
			continue
		}
		cm := c.cfg[src.ConfigMapRef.Name]
		if cm == nil {
			if !isTrue(src.ConfigMapRef.Optional) {
				problems = append(problems, fmt.Sprintf("envFrom ConfigMap %q is not in the build", src.ConfigMapRef.Name))
			}
			continue
		}
		for k, v := range cm.Data {
			env[src.Prefix+k] = v
		}
	}
	for _, e := range ct.Env {
		env[e.Name] = e.Value
		if r := e.ValueFrom; r != nil && r.ConfigMapKeyRef != nil && !isTrue(r.ConfigMapKeyRef.Optional) {
			if cm := c.cfg[r.ConfigMapKeyRef.Name]; cm == nil {
				problems = append(problems, fmt.Sprintf("env %s: ConfigMap %q is not in the build", e.Name, r.ConfigMapKeyRef.Name))
			} else {
				env[e.Name] = cm.Data[r.ConfigMapKeyRef.Key]
			}
		}
	}
	return env, problems
}

func (c *checker) service(s *corev1.Service) {
	ref := "Service/" + s.Name
	if len(s.Spec.Selector) == 0 {
		c.add(ref, "no selector")
		return
	}
	sel := labels.SelectorFromSet(s.Spec.Selector)
	var backends []*appsv1.Deployment
	for _, d := range c.deploys {
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			backends = append(backends, d)
		}
	}
	if len(backends) == 0 {
		c.add(ref, "selector %s matches no Deployment's pod template", sel)
		return
	}
	for _, p := range s.Spec.Ports {
		tp := p.TargetPort
		if tp.Type == intstr.Int && tp.IntVal == 0 {
			tp = intstr.FromInt32(p.Port)
		}
		for _, d := range backends {
			if !hasContainerPort(d, tp) {
				c.add(ref, "port %q: targetPort %s is not a container port of Deployment/%s", p.Name, tp.String(), d.Name)
			}
		}
	}
	if s.Name == "upscaler" && s.Spec.ClusterIP != corev1.ClusterIPNone {
		c.add(ref, "must be headless (clusterIP: None): gRPC keeps long-lived connections, so the gateway balances per call over the pod IPs")
	}
}

// dialTargets checks every dns:/// target a server is configured with: the name
// must be a Service in the build, headless (so DNS returns the pods and the client
// balances per call), and serve the port.
func (c *checker) dialTargets() {
	for _, d := range c.deploys {
		for _, ct := range d.Spec.Template.Spec.Containers {
			env, _ := c.env(ct)
			for _, name := range sortedKeys(env) {
				target := env[name]
				if !strings.HasPrefix(name, "HIREZ_") || !strings.HasSuffix(name, "_TARGET") || !strings.HasPrefix(target, "dns:///") {
					continue
				}
				ref := "Deployment/" + d.Name
				host, portStr, ok := strings.Cut(strings.TrimPrefix(target, "dns:///"), ":")
				port, err := strconv.Atoi(portStr)
				if !ok || err != nil {
					c.add(ref, "%s=%q: want dns:///<service>:<port>", name, target)
					continue
				}
				svcName := strings.SplitN(host, ".", 2)[0]
				s := c.svc[svcName]
				switch {
				case s == nil:
					c.add(ref, "%s=%q: no Service %q in the build", name, target, svcName)
				case s.Spec.ClusterIP != corev1.ClusterIPNone:
					c.add(ref, "%s=%q: Service/%s is not headless, so a gRPC client cannot balance per call", name, target, svcName)
				case !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == port }):
					c.add(ref, "%s=%q: Service/%s has no port %d", name, target, svcName, port)
				}
			}
		}
	}
}

func (c *checker) hpa(h *autoscalingv2.HorizontalPodAutoscaler) {
	ref := "HorizontalPodAutoscaler/" + h.Name
	t := h.Spec.ScaleTargetRef
	var d *appsv1.Deployment
	for _, x := range c.deploys {
		if t.Kind == "Deployment" && x.Name == t.Name {
			d = x
		}
	}
	if d == nil {
		c.add(ref, "scaleTargetRef %s/%s is not a Deployment in the build", t.Kind, t.Name)
		return
	}
	if d.Spec.Replicas != nil {
		c.add(ref, "Deployment/%s sets spec.replicas; remove it so applying the manifests does not reset the HPA's scale", d.Name)
	}
	if h.Spec.MinReplicas != nil && *h.Spec.MinReplicas > h.Spec.MaxReplicas {
		c.add(ref, "minReplicas %d > maxReplicas %d", *h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	for _, m := range h.Spec.Metrics {
		if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource == nil || m.Resource.Target.Type != autoscalingv2.UtilizationMetricType {
			continue
		}
		for _, ct := range d.Spec.Template.Spec.Containers {
			if _, ok := ct.Resources.Requests[m.Resource.Name]; !ok {
				c.add(ref, "scales on %s utilisation but container %q of Deployment/%s has no %s request", m.Resource.Name, ct.Name, d.Name, m.Resource.Name)
			}
		}
	}
}

func (c *checker) pdb(p *policyv1.PodDisruptionBudget) {
	ref := "PodDisruptionBudget/" + p.Name
	sel, err := selector(p.Spec.Selector)
	if err != nil {
		c.add(ref, "selector: %v", err)
		return
	}
	matched := false
	for _, d := range c.deploys {
		if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			continue
		}
		matched = true
		if mu := p.Spec.MaxUnavailable; mu != nil && mu.Type == intstr.Int && mu.IntVal == 0 {
			c.add(ref, "maxUnavailable 0 blocks every node drain")
		}
		if ma := p.Spec.MinAvailable; ma != nil && ma.Type == intstr.Int && ma.IntVal >= c.minReplicas(d) {
			c.add(ref, "minAvailable %d ≥ the %d replicas of Deployment/%s blocks every node drain", ma.IntVal, c.minReplicas(d), d.Name)
		}
	}
	if !matched {
		c.add(ref, "selector %s matches no Deployment's pod template", sel)
	}
}

// minReplicas is the fewest pods a Deployment runs: its HPA's minimum, or replicas.
func (c *checker) minReplicas(d *appsv1.Deployment) int32 {
	for _, h := range c.hpas {
		if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == d.Name && h.Spec.MinReplicas != nil {
			return *h.Spec.MinReplicas
		}
	}
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

func (c *checker) networkPolicies() {
	if len(c.deploys) == 0 {
		return
	}
	defaultDeny := false
	for _, np := range c.netpols {
		ref := "NetworkPolicy/" + np.Name
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			c.add(ref, "podSelector: %v", err)
			continue
		}
		if sel.Empty() && len(np.Spec.Ingress) == 0 && slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			defaultDeny = true
			continue
		}
		if !slices.ContainsFunc(c.deploys, func(d *appsv1.Deployment) bool { return sel.Matches(labels.Set(d.Spec.Template.Labels)) }) {
			c.add(ref, "podSelector %s selects no Deployment's pods", sel)
		}
	}
	if !defaultDeny {
		c.add("build", "no default-deny ingress NetworkPolicy (podSelector: {}, policyTypes: [Ingress], no rules)")
		return
	}
	// With ingress denied by default, every port a container declares must be opened
	// by some policy, or nothing can reach it.
	for _, d := range c.deploys {
		podLabels := labels.Set(d.Spec.Template.Labels)
		for _, ct := range d.Spec.Template.Spec.Containers {
			for _, p := range ct.Ports {
				if !c.opened(podLabels, p) {
					c.add("Deployment/"+d.Name, "container %q: port %q (%d) is not opened by any NetworkPolicy", ct.Name, p.Name, p.ContainerPort)
				}
			}
		}
	}
}

func (c *checker) opened(pod labels.Set, p corev1.ContainerPort) bool {
	for _, np := range c.netpols {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(pod) {
			continue
		}
		for _, rule := range np.Spec.Ingress {
			if len(rule.Ports) == 0 {
				return true
			}
			for _, rp := range rule.Ports {
				if rp.Port == nil {
					return true
				}
				if (rp.Port.Type == intstr.Int && rp.Port.IntVal == p.ContainerPort) || (rp.Port.Type == intstr.String && rp.Port.StrVal == p.Name) {
					return true
				}
			}
		}
	}
	return false
}

func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return nil, fmt.Errorf("missing")
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return nil, err
	}
	if sel.Empty() {
		return nil, fmt.Errorf("empty (would select every pod)")
	}
	return sel, nil
}

func hasContainerPort(d *appsv1.Deployment, tp intstr.IntOrString) bool {
	for _, ct := range d.Spec.Template.Spec.Containers {
		for _, p := range ct.Ports {
			if (tp.Type == intstr.String && p.Name == tp.StrVal) || (tp.Type == intstr.Int && p.ContainerPort == tp.IntVal) {
				return true
			}
		}
	}
	return false
}

// imageProblem says what is wrong with an image reference, or "".
func imageProblem(image string) string {
	if image == "" {
		return "no image"
	}
	if strings.Contains(image, "@sha256:") {
		return ""
	}
	tag, ok := imageTag(image)
	switch {
	case !ok:
		return fmt.Sprintf("image %q has no tag; pin a version (never latest)", image)
	case tag == "latest":
		return fmt.Sprintf("image %q uses the :latest tag; pin a version", image)
	}
	return ""
}

// imageTag returns the tag of an image reference; a colon before the last slash
// belongs to a registry host:port, not a tag.
func imageTag(image string) (string, bool) {
	i := strings.LastIndex(image, ":")
	if i < 0 || i < strings.LastIndex(image, "/") {
		return "", false
	}
	return image[i+1:], true
}

func imageRepo(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if tag, ok := imageTag(image); ok {
		return strings.TrimSuffix(image, ":"+tag)
	}
	return image
}

func isTrue(b *bool) bool { return b != nil && *b }

func firstInt64(vs ...*int64) *int64 {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// grpcProbes: liveness and readiness are native gRPC probes on the gRPC port,
// liveness on the liveness service, readiness on the overall status.
func (c *checker) grpcProbes(ref, cref string, ct corev1.Container) {
	grpcPort := int32(0)
	for _, p := range ct.Ports {
		if p.Name == "grpc" {
			grpcPort = p.ContainerPort
		}
	}
	for _, pr := range []struct {
		kind  string
		probe *corev1.Probe
	}{{"liveness", ct.LivenessProbe}, {"readiness", ct.ReadinessProbe}} {
		switch {
		case pr.probe == nil:
			c.add(ref, "%s: no %s probe", cref, pr.kind)
		case pr.probe.GRPC == nil:
			c.add(ref, "%s: %s probe is not a gRPC probe (want grpc: {port: …})", cref, pr.kind)
		case grpcPort != 0 && pr.probe.GRPC.Port != grpcPort:
			c.add(ref, "%s: %s probe checks port %d, the gRPC port is %d", cref, pr.kind, pr.probe.GRPC.Port, grpcPort)
		}
	}
	// Liveness is the process only, readiness its dependencies: a
	// liveness probe on readiness restarts every pod when a dependency is
	// down or the pod drains.
	if p := ct.LivenessProbe; p != nil && p.GRPC != nil && grpcService(p) != LivenessService {
		c.add(ref, "%s: liveness probe checks health service %q, which follows readiness; want service: %s (the process only)", cref, grpcService(p), LivenessService)
	}
	if p := ct.ReadinessProbe; p != nil && p.GRPC != nil && grpcService(p) == LivenessService {
		c.add(ref, "%s: readiness probe checks the %s service, which is SERVING even while draining; leave service empty (overall health)", cref, LivenessService)
	}
}

// HTTPLiveness and HTTPReadiness are the metrics port's paths that answer the
// liveness and readiness questions (platform/server).
const (
	HTTPLiveness  = "/healthz"
	HTTPReadiness = "/readyz"
)

// httpProbes: a container serving TLS on its gRPC port is probed with
// httpGet on its metrics port: /healthz for liveness, /readyz for readiness;
// no probe may be a gRPC one (it would fail every time).
func (c *checker) httpProbes(ref, cref string, ct corev1.Container, env map[string]string) {
	metricsPort := int32(0)
	for _, p := range ct.Ports {
		if p.Name == "metrics" {
			metricsPort = p.ContainerPort
		}
	}
	if metricsPort == 0 || env["HIREZ_METRICS_ADDR"] == "" {
		c.add(ref, "%s: serves TLS (HIREZ_TLS_CERT) but has no plaintext metrics port to probe (a port named metrics and HIREZ_METRICS_ADDR)", cref)
	}
	for _, pr := range []struct {
		kind, path string
		probe      *corev1.Probe
	}{{"liveness", HTTPLiveness, ct.LivenessProbe}, {"readiness", HTTPReadiness, ct.ReadinessProbe}, {"startup", "", ct.StartupProbe}} {
		switch {
		case pr.probe == nil:
			if pr.kind != "startup" {
				c.add(ref, "%s: no %s probe", cref, pr.kind)
			}
		case pr.probe.GRPC != nil:
			c.add(ref, "%s: %s probe is a gRPC probe, but the gRPC port serves TLS (HIREZ_TLS_CERT) and the kubelet's gRPC probe speaks plaintext; probe the metrics port with httpGet %s", cref, pr.kind, orPaths(pr.path))
		case pr.probe.HTTPGet == nil:
			c.add(ref, "%s: %s probe is not an httpGet probe of the metrics port", cref, pr.kind)
		default:
			g := pr.probe.HTTPGet
			if !(g.Port.Type == intstr.String && g.Port.StrVal == "metrics") && !(g.Port.Type == intstr.Int && g.Port.IntVal == metricsPort) {
				c.add(ref, "%s: %s probe checks port %s, the metrics port is %d", cref, pr.kind, g.Port.String(), metricsPort)
			}
			if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
				c.add(ref, "%s: %s probe uses %s; the metrics port is plain HTTP", cref, pr.kind, g.Scheme)
			}
			if pr.path != "" && g.Path != pr.path {
				c.add(ref, "%s: %s probe checks %q, want %q", cref, pr.kind, g.Path, pr.path)
			}
			if pr.path == "" && g.Path != HTTPLiveness && g.Path != HTTPReadiness {
				c.add(ref, "%s: %s probe checks %q, want %s", cref, pr.kind, g.Path, orPaths(""))
			}
		}
	}
}

func orPaths(p string) string {
	if p != "" {
		return p
	}
	return HTTPLiveness + " or " + HTTPReadiness
}

// tlsFiles: every TLS file a container is pointed at (HIREZ_TLS_* and the
// client flags' HIREZ_<PEER>_TLS_*) lies in a mounted Secret volume, so that
// it exists and is rotated by the kubelet.
func (c *checker) tlsFiles(ref, cref string, pod *corev1.PodSpec, ct corev1.Container, env map[string]string) {
	for _, name := range slices.Sorted(maps.Keys(env)) {
		v := env[name]
		if v == "" || !strings.HasPrefix(name, "HIREZ_") || !(strings.HasPrefix(name, "HIREZ_TLS_") || strings.Contains(name, "_TLS_")) {
			continue
		}
		ok := slices.ContainsFunc(ct.VolumeMounts, func(m corev1.VolumeMount) bool {
			under := strings.HasPrefix(v, strings.TrimSuffix(m.MountPath, "/")+"/")
			return under && slices.ContainsFunc(pod.Volumes, func(vol corev1.Volume) bool {
				return vol.Name == m.Name && (vol.Secret != nil || vol.Projected != nil)
			})
		})
		if !ok {
			c.add(ref, "%s: %s=%s is not in a mounted Secret volume", cref, name, v)
		}
	}
}
