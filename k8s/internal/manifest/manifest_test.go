package manifest

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name, doc, wantErr string
	}{
		{"ok", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: 2}\n", ""},
		{"unknown field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replica: 2}\n", `Deployment/a: strict decode: json: unknown field "replica"`},
		{"misplaced field", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {selector: {a: b}, containerPort: 1}\n", `unknown field "containerPort"`},
		{"duplicate field", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nmetadata: {name: t}\n", `key "metadata" already set`},
		{"unsupported kind", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\n", "Job/j: unsupported apiVersion/kind batch/v1/Job"},
		{"wrong version", "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\n", "unsupported apiVersion/kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := Decode([]byte(tt.doc))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if d := o.Obj.(*appsv1.Deployment); *d.Spec.Replicas != 2 {
					t.Fatalf("replicas = %d", *d.Spec.Replicas)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestBuildDirInMemory(t *testing.T) {
	fs := filesys.MakeFsInMemory()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(fs.WriteFile("/app/kustomization.yaml", []byte("resources: [sa.yaml]\nnamespace: x\n")))
	must(fs.WriteFile("/app/sa.yaml", []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n")))
	b, err := BuildDir(fs, "/app")
	must(err)
	if len(b.Objects) != 1 || b.Objects[0].Ref() != "ServiceAccount/a" || b.Objects[0].Namespace != "x" {
		t.Fatalf("objects = %+v", b.Objects)
	}
	if !strings.Contains(string(b.YAML), "namespace: x") {
		t.Fatalf("yaml = %s", b.YAML)
	}
}
