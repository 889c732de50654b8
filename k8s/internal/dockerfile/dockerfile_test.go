package dockerfile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/k8s/internal/opsdoc"
)

func parse(t *testing.T, text string) *File {
	t.Helper()
	f, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestParse(t *testing.T) {
	f := parse(t, `# comment
ARG GO=1.26.8
FROM --platform=$BUILDPLATFORM golang:${GO}-bookworm AS build
RUN echo a \
    # a comment inside a continuation
    && echo b
FROM build as second
user 10:10
`)
	if len(f.Stages) != 2 {
		t.Fatalf("stages = %+v", f.Stages)
	}
	if got := f.Stages[0].Base; got != "golang:1.26.8-bookworm" {
		t.Errorf("base = %q", got)
	}
	if got := f.Stages[0].Insts[0].Args; got != "echo a && echo b" {
		t.Errorf("run = %q", got)
	}
	if f.User(f.Stages[1]) != "10:10" || f.User(f.Stages[0]) != "" {
		t.Errorf("users = %q, %q", f.User(f.Stages[1]), f.User(f.Stages[0]))
	}
}

func TestLint(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string // substrings, one per expected problem
	}{
		{"good", "FROM golang:1.26.8 AS b\nFROM debian:12.11-slim\nUSER 65532:65532\n", nil},
		{"scratch and stage refs", "FROM golang:1.26.8 AS b\nFROM b AS c\nUSER 1\nFROM scratch\nUSER 2\n", nil},
		{"digest", "FROM debian@sha256:0123\nUSER 1\n", nil},
		{"latest", "FROM debian:latest\nUSER 1\n", []string{"line 1: FROM debian:latest uses :latest"}},
		{"untagged", "FROM debian\nUSER 1\n", []string{"line 1: FROM debian has no tag"}},
		{"unresolved arg", "ARG V\nFROM debian:$V\nUSER 1\n", []string{"a build argument without a default"}},
		{"host", "FROM registry.example:5000/debian:12\nUSER 1\n", []string{"names a registry host"}},
		{"no user", "FROM debian:12\n", []string{`final stage "" (line 1): no USER`}},
		{"root user", "FROM debian:12\nUSER 0\n", []string{"USER 0 is root"}},
		{"named user", "FROM debian:12\nUSER nobody\n", []string{"USER nobody is not numeric"}},
		{"user only in earlier stage", "FROM debian:12 AS a\nUSER 1\nFROM debian:12\n", []string{"no USER"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Lint(parse(t, tt.text))
			if len(got) != len(tt.want) {
				t.Fatalf("problems = %q, want %d matching %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestLintImages(t *testing.T) {
	root := t.TempDir()
	write := func(path string) {
		t.Helper()
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("svc/go.mod")
	write("svc/cmd/svc/main.go")
	write("nocmd/go.mod")
	doc := opsdoc.Doc{Binaries: map[string]opsdoc.Binary{
		"svc":   {Name: "svc", Module: "svc"},
		"nocmd": {Name: "nocmd", Module: "elsewhere"},
	}}
	f := parse(t, "FROM golang:1 AS build\nARG MODULE\nARG BINARY\nFROM debian:12 AS cpu\nUSER 1\nFROM debian:12 AS root\n")
	got := LintImages(root, f, []Image{
		{Name: "svc", Module: "svc", Binary: "svc", Targets: []string{"cpu"}},
		{Name: "nocmd", Module: "nocmd", Binary: "nocmd", Targets: []string{"gpu", "root"}},
		{Name: "ghost", Module: "ghost", Binary: "ghost", Targets: []string{"cpu"}},
	}, doc)
	want := []string{
		"image nocmd: " + filepath.Join("nocmd", "cmd", "nocmd") + " does not exist",
		"image nocmd: module nocmd, docs/operations.md says elsewhere",
		`image nocmd: target "gpu" is not a stage`,
		`image nocmd: target "root": no USER`,
		"image ghost: module ghost has no go.mod",
		"image ghost: binary ghost is not in docs/operations.md",
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, w) }) {
			t.Errorf("missing problem %q in %q", w, got)
		}
	}
	if len(got) != len(want)+1 { // + ghost's missing cmd dir
		t.Errorf("got %d problems, want %d: %q", len(got), len(want)+1, got)
	}
}

func TestImageRepos(t *testing.T) {
	im := Image{Name: "up", Targets: []string{"cpu", "cuda"}}
	if got := im.Repos(); !slices.Equal(got, []string{"up", "up-cuda"}) {
		t.Fatalf("repos = %v", got)
	}
}
