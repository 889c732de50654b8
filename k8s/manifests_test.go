package k8s_test

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/hirez-ml/hirez/k8s/internal/dockerfile"
	"github.com/hirez-ml/hirez/k8s/internal/manifest"
	"github.com/hirez-ml/hirez/k8s/internal/opsdoc"
	"github.com/hirez-ml/hirez/k8s/internal/policy"
)

// build renders an overlay and fails the test on any policy violation.
func build(t *testing.T, fs filesys.FileSystem, dir string) objects {
	t.Helper()
	doc, err := opsdoc.Load("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	b, err := manifest.BuildDir(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range policy.Check(b.Objects, doc) {
		t.Errorf("%s: %s", dir, v)
	}
	return objects(b.Objects)
}

// TestOverlays builds every overlay in overlays/ and holds it to the policy, then
// to what every environment needs.
func TestOverlays(t *testing.T) {
	entries, err := os.ReadDir("overlays")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	for _, want := range []string{"dev", "prod"} {
		if !slices.Contains(names, want) {
			t.Errorf("overlay %s missing", want)
		}
	}
	images := publishedImages(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			objs := build(t, filesys.MakeFsOnDisk(), filepath.Join("overlays", name))
			common(t, objs, images)
		})
	}
}

func common(t *testing.T, objs objects, images map[string]bool) {
	for _, name := range []string{"generator", "upscaler", "gateway", "trainer"} {
		if objs.deployment(name) == nil || objs.service(name) == nil || objs.get("ServiceAccount", name) == nil {
			t.Errorf("%s: want a Deployment, Service and ServiceAccount", name)
		}
	}
	if s := objs.service("upscaler"); s != nil && s.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service/upscaler is not headless")
	}
	if d := objs.deployment("trainer"); d != nil {
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
			t.Errorf("Deployment/trainer: want replicas 1")
		}
		if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			t.Errorf("Deployment/trainer: strategy %q, want Recreate", d.Spec.Strategy.Type)
		}
		if !slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.PersistentVolumeClaim != nil }) {
			t.Errorf("Deployment/trainer: no PersistentVolumeClaim for the data dir")
		}
	}
	// Namespaced objects all land in the overlay's namespace.
	ns := ""
	for _, o := range objs {
		if o.Kind == "Namespace" {
			ns = o.Name
		}
	}
	if ns == "" {
		t.Errorf("no Namespace object")
	}
	for _, o := range objs {
		if o.Kind != "Namespace" && o.Namespace != ns {
			t.Errorf("%s: namespace %q, want %q", o.Ref(), o.Namespace, ns)
		}
	}
	// Every image is one scripts/images.sh builds, under a pinned tag.
	for _, d := range objs.deployments() {
		for _, c := range d.Spec.Template.Spec.Containers {
			repo, _, _ := strings.Cut(c.Image, ":")
			if !images[path.Base(repo)] {
				t.Errorf("Deployment/%s: image %s is not built from build/docker/images.txt", d.Name, c.Image)
			}
		}
	}
}

func TestDev(t *testing.T) {
	objs := build(t, filesys.MakeFsOnDisk(), "overlays/dev")
	for _, d := range objs.deployments() {
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
			t.Errorf("Deployment/%s: dev wants one replica", d.Name)
		}
		if gpus(d) > 0 {
			t.Errorf("Deployment/%s: dev is CPU only", d.Name)
		}
	}
	for _, o := range objs {
		if o.Kind == "HorizontalPodAutoscaler" {
			t.Errorf("%s: dev has fixed replicas", o.Ref())
		}
	}
}

func TestProd(t *testing.T) {
	objs := build(t, filesys.MakeFsOnDisk(), "overlays/prod")
	prod(t, objs)
	if d := objs.deployment("upscaler"); d != nil && gpus(d) > 0 {
		t.Errorf("Deployment/upscaler: prod upscalers are CPU unless opted in")
	}
}

// TestProdGPUUpscalers applies the documented opt-in — uncommenting the
// gpu-upscaler line in overlays/prod — to an in-memory copy and builds it.
func TestProdGPUUpscalers(t *testing.T) {
	fs := filesys.MakeFsInMemory()
	for _, dir := range []string{"base", "components", "overlays"} {
		err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return fs.WriteFile(path.Join("/k8s", filepath.ToSlash(p)), data)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	const kust = "/k8s/overlays/prod/kustomization.yaml"
	data, err := fs.ReadFile(kust)
	if err != nil {
		t.Fatal(err)
	}
	const off, on = "  # - ../../components/gpu-upscaler\n", "  - ../../components/gpu-upscaler\n"
	if !strings.Contains(string(data), off) {
		t.Fatalf("%s: the commented opt-in line %q is gone; update docs/kubernetes.md and this test", kust, strings.TrimSpace(off))
	}
	if err := fs.WriteFile(kust, []byte(strings.Replace(string(data), off, on, 1))); err != nil {
		t.Fatal(err)
	}
	objs := build(t, fs, "/k8s/overlays/prod")
	prod(t, objs)
	d := objs.deployment("upscaler")
	if d == nil || gpus(d) != 1 {
		t.Fatalf("Deployment/upscaler: want one GPU after opting in")
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; !strings.Contains(img, "/upscaler-cuda:") {
		t.Errorf("Deployment/upscaler: image %s, want the -cuda build", img)
	}
}

func prod(t *testing.T, objs objects) {
	t.Helper()
	if d := objs.deployment("trainer"); d == nil || gpus(d) != 1 {
		t.Errorf("Deployment/trainer: prod wants an nvidia.com/gpu limit of 1")
	}
	if d := objs.deployment("gateway"); d == nil || d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("Deployment/gateway: prod wants at least 2 replicas")
	}
	var hpa *autoscalingv2.HorizontalPodAutoscaler
	for _, o := range objs {
		if h, ok := o.Obj.(*autoscalingv2.HorizontalPodAutoscaler); ok && h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == "upscaler" {
			hpa = h
		}
	}
	if hpa == nil {
		t.Errorf("no HorizontalPodAutoscaler targets Deployment/upscaler")
	} else if !slices.ContainsFunc(hpa.Spec.Metrics, func(m autoscalingv2.MetricSpec) bool {
		return m.Resource != nil && m.Resource.Name == corev1.ResourceCPU && m.Resource.Target.Type == autoscalingv2.UtilizationMetricType
	}) {
		t.Errorf("HorizontalPodAutoscaler/%s: no CPU utilisation metric", hpa.Name)
	} else if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 {
		t.Errorf("HorizontalPodAutoscaler/%s: minReplicas < 2", hpa.Name)
	}
	// Every stateless server has a disruption budget.
	for _, name := range []string{"gateway", "generator", "upscaler"} {
		d := objs.deployment(name)
		covered := false
		for _, o := range objs {
			if p, ok := o.Obj.(*policyv1.PodDisruptionBudget); ok && d != nil && p.Spec.Selector != nil &&
				labels.SelectorFromSet(p.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
				covered = true
			}
		}
		if !covered {
			t.Errorf("Deployment/%s: no PodDisruptionBudget", name)
		}
	}
	// The admin token is required in prod.
	if d := objs.deployment("trainer"); d != nil {
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Secret != nil && v.Secret.SecretName == "hirez-admin-token" && (v.Secret.Optional == nil || *v.Secret.Optional) {
				t.Errorf("Deployment/trainer: the admin token secret is optional in prod")
			}
		}
	}
}

func publishedImages(t *testing.T) map[string]bool {
	t.Helper()
	list, err := dockerfile.LoadImages("../build/docker/images.txt")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, im := range list {
		for _, r := range im.Repos() {
			out[r] = true
		}
	}
	return out
}

func gpus(d *appsv1.Deployment) int64 {
	var n int64
	for _, c := range d.Spec.Template.Spec.Containers {
		if q, ok := c.Resources.Limits[policy.GPUResource]; ok {
			n += q.Value()
		}
	}
	return n
}

type objects []manifest.Object

func (objs objects) get(kind, name string) any {
	for _, o := range objs {
		if o.Kind == kind && o.Name == name {
			return o.Obj
		}
	}
	return nil
}

func (objs objects) deployment(name string) *appsv1.Deployment {
	d, _ := objs.get("Deployment", name).(*appsv1.Deployment)
	return d
}

func (objs objects) service(name string) *corev1.Service {
	s, _ := objs.get("Service", name).(*corev1.Service)
	return s
}

func (objs objects) deployments() []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, o := range objs {
		if d, ok := o.Obj.(*appsv1.Deployment); ok {
			out = append(out, d)
		}
	}
	return out
}
