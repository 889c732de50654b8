// Package manifest builds a kustomization with the kustomize API (the same engine
// as `kubectl apply -k`) and decodes every object strictly into the k8s.io/api
// type for its kind, so a misspelt or misplaced field fails instead of being
// silently dropped by the API server.
package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Object is one decoded object of a build.
type Object struct {
	Kind, Name, Namespace string
	// Obj points at the typed value: *appsv1.Deployment, *corev1.Service, …
	Obj any
}

// Ref names the object the way policy messages do: "Deployment/gateway".
func (o Object) Ref() string { return o.Kind + "/" + o.Name }

// Build is a rendered kustomization: the YAML stream and its decoded objects.
type Build struct {
	YAML    []byte
	Objects []Object
}

// newObject maps the apiVersion/kind pairs hirez uses to their Go types. Anything
// else is an error: a new kind is added here together with its policy.
var newObject = map[string]func() any{
	"v1/ConfigMap":                           func() any { return new(corev1.ConfigMap) },
	"v1/Namespace":                           func() any { return new(corev1.Namespace) },
	"v1/PersistentVolumeClaim":               func() any { return new(corev1.PersistentVolumeClaim) },
	"v1/Secret":                              func() any { return new(corev1.Secret) },
	"v1/Service":                             func() any { return new(corev1.Service) },
	"v1/ServiceAccount":                      func() any { return new(corev1.ServiceAccount) },
	"apps/v1/Deployment":                     func() any { return new(appsv1.Deployment) },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return new(networkingv1.NetworkPolicy) },
	"policy/v1/PodDisruptionBudget":          func() any { return new(policyv1.PodDisruptionBudget) },
}

// BuildDir runs kustomize on dir (a directory holding a kustomization.yaml) in fs
// and decodes the result.
func BuildDir(fs filesys.FileSystem, dir string) (Build, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(fs, dir)
	if err != nil {
		return Build{}, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var b Build
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return Build{}, fmt.Errorf("%s/%s: to YAML: %w", r.GetKind(), r.GetName(), err)
		}
		o, err := Decode(y)
		if err != nil {
			return Build{}, err
		}
		b.Objects = append(b.Objects, o)
		if len(b.YAML) > 0 {
			b.YAML = append(b.YAML, "---\n"...)
		}
		b.YAML = append(b.YAML, y...)
	}
	return b, nil
}

// Decode decodes one YAML document strictly: unknown or duplicate fields are errors.
func Decode(doc []byte) (Object, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return Object{}, fmt.Errorf("decode: %w", err)
	}
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(j, &meta); err != nil {
		return Object{}, fmt.Errorf("decode: %w", err)
	}
	o := Object{Kind: meta.Kind, Name: meta.Metadata.Name, Namespace: meta.Metadata.Namespace}
	mk, ok := newObject[meta.APIVersion+"/"+meta.Kind]
	if !ok {
		return Object{}, fmt.Errorf("%s: unsupported apiVersion/kind %s/%s", o.Ref(), meta.APIVersion, meta.Kind)
	}
	o.Obj = mk()
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(o.Obj); err != nil {
		return Object{}, fmt.Errorf("%s: strict decode: %w", o.Ref(), err)
	}
	return o, nil
}
