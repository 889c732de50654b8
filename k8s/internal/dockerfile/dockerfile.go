// Package dockerfile parses the repo's Dockerfiles and the image list
// (build/docker/images.txt) just enough to lint them: pinned base images, a
// non-root numeric USER in every stage an image is built from, and build targets
// that exist in the repository and in docs/operations.md.
package dockerfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/hirez-ml/hirez/k8s/internal/opsdoc"
)

// Instruction is one (continuation-joined) Dockerfile instruction.
type Instruction struct {
	Cmd  string // upper case: FROM, RUN, USER, …
	Args string
	Line int
}

// Stage is a FROM and the instructions up to the next FROM.
type Stage struct {
	Name  string // after AS, lower case; "" when unnamed
	Base  string // the image or stage it starts from, global ARGs expanded
	Line  int
	Insts []Instruction
}

// File is a parsed Dockerfile.
type File struct {
	Args   map[string]string // global ARGs (before the first FROM) with their defaults
	Stages []Stage
}

// Parse reads a Dockerfile. Heredocs are not supported (hirez does not use them).
func Parse(r io.Reader) (*File, error) {
	f := &File{Args: map[string]string{}}
	sc := bufio.NewScanner(r)
	var buf strings.Builder
	start, n := 0, 0
	flush := func() error {
		text := strings.TrimSpace(buf.String())
		buf.Reset()
		if text == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := Instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start}
		return f.add(in)
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue // comments (and parser directives) may sit inside continuations
		}
		if buf.Len() == 0 {
			if trimmed == "" {
				continue
			}
			start = n
		}
		if strings.HasSuffix(trimmed, "\\") {
			buf.WriteString(strings.TrimSpace(strings.TrimSuffix(trimmed, "\\")))
			buf.WriteByte(' ')
			continue
		}
		buf.WriteString(trimmed)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(f.Stages) == 0 {
		return nil, fmt.Errorf("no FROM")
	}
	return f, nil
}

func (f *File) add(in Instruction) error {
	if in.Cmd == "FROM" {
		var words []string
		for _, w := range strings.Fields(in.Args) {
			if !strings.HasPrefix(w, "--") {
				words = append(words, w)
			}
		}
		if len(words) == 0 {
			return fmt.Errorf("line %d: FROM without an image", in.Line)
		}
		s := Stage{Base: f.expand(words[0]), Line: in.Line}
		if len(words) == 3 && strings.EqualFold(words[1], "AS") {
			s.Name = strings.ToLower(words[2])
		} else if len(words) != 1 {
			return fmt.Errorf("line %d: cannot read FROM %s", in.Line, in.Args)
		}
		f.Stages = append(f.Stages, s)
		return nil
	}
	if len(f.Stages) == 0 {
		if in.Cmd != "ARG" {
			return fmt.Errorf("line %d: %s before the first FROM", in.Line, in.Cmd)
		}
		name, def, _ := strings.Cut(in.Args, "=")
		f.Args[strings.TrimSpace(name)] = strings.Trim(strings.TrimSpace(def), `"`)
		return nil
	}
	s := &f.Stages[len(f.Stages)-1]
	s.Insts = append(s.Insts, in)
	return nil
}

var argRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// expand substitutes global ARG defaults; unknown or empty ones stay as written.
func (f *File) expand(s string) string {
	return argRE.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m, "${}")
		if v := f.Args[name]; v != "" {
			return v
		}
		return m
	})
}

// Stage returns the stage called name.
func (f *File) Stage(name string) (Stage, bool) {
	for _, s := range f.Stages {
		if s.Name != "" && s.Name == strings.ToLower(name) {
			return s, true
		}
	}
	return Stage{}, false
}

// User is the USER a stage runs as: its last USER, else its parent stage's, else ""
// (root).
func (f *File) User(s Stage) string {
	for i := len(s.Insts) - 1; i >= 0; i-- {
		if s.Insts[i].Cmd == "USER" {
			return s.Insts[i].Args
		}
	}
	if parent, ok := f.Stage(s.Base); ok && parent.Line < s.Line {
		return f.User(parent)
	}
	return ""
}

// Declares reports whether any stage declares ARG name (or the file does globally).
func (f *File) Declares(name string) bool {
	if _, ok := f.Args[name]; ok {
		return true
	}
	for _, s := range f.Stages {
		for _, in := range s.Insts {
			if in.Cmd == "ARG" && strings.TrimSpace(strings.SplitN(in.Args, "=", 2)[0]) == name {
				return true
			}
		}
	}
	return false
}

// Lint returns what is wrong with a Dockerfile on its own: unpinned or
// host-qualified base images and a final stage without a non-root USER.
func Lint(f *File) []string {
	var out []string
	for i, s := range f.Stages {
		if msg := baseProblem(f, s, i); msg != "" {
			out = append(out, fmt.Sprintf("line %d: %s", s.Line, msg))
		}
	}
	last := f.Stages[len(f.Stages)-1]
	if msg := userProblem(f.User(last)); msg != "" {
		out = append(out, fmt.Sprintf("final stage %q (line %d): %s", last.Name, last.Line, msg))
	}
	return out
}

func baseProblem(f *File, s Stage, i int) string {
	b := s.Base
	if strings.Contains(b, "$") {
		return fmt.Sprintf("FROM %s: a build argument without a default; base images must be pinned in the file", b)
	}
	if b == "scratch" {
		return ""
	}
	for _, prev := range f.Stages[:i] {
		if prev.Name != "" && prev.Name == strings.ToLower(b) {
			return ""
		}
	}
	if first, _, ok := strings.Cut(b, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return fmt.Sprintf("FROM %s names a registry host; keep host names out of the repo (configure a mirror in the engine instead)", b)
	}
	if strings.Contains(b, "@sha256:") {
		return ""
	}
	_, tag, ok := strings.Cut(b, ":")
	switch {
	case !ok || tag == "":
		return fmt.Sprintf("FROM %s has no tag; pin a version", b)
	case tag == "latest":
		return fmt.Sprintf("FROM %s uses :latest; pin a version", b)
	}
	return ""
}

// userProblem wants a numeric, non-zero UID: Kubernetes can only verify
// runAsNonRoot against a number.
func userProblem(user string) string {
	if user == "" {
		return "no USER: the image would run as root"
	}
	uid, _, _ := strings.Cut(user, ":")
	n, err := strconv.Atoi(uid)
	switch {
	case err != nil:
		return fmt.Sprintf("USER %s is not numeric; use a UID so runAsNonRoot can be verified", user)
	case n == 0:
		return fmt.Sprintf("USER %s is root", user)
	}
	return ""
}

// Image is one line of build/docker/images.txt.
type Image struct {
	Name    string   // image name without registry or tag, e.g. "upscaler"
	Module  string   // module directory, e.g. "services/upscaler"
	Binary  string   // cmd/<binary> inside the module
	Targets []string // Dockerfile stages to build: cpu, cuda, static
}

// Repos returns the repository names the image is published under: <name> for
// cpu/static and <name>-cuda for cuda.
func (im Image) Repos() []string {
	var out []string
	for _, t := range im.Targets {
		if t == "cuda" {
			out = append(out, im.Name+"-cuda")
		} else {
			out = append(out, im.Name)
		}
	}
	return out
}

// LoadImages reads images.txt: "<name> <module> <binary> <target,target…>" per
// line; # starts a comment.
func LoadImages(path string) ([]Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read image list: %w", err)
	}
	var out []Image
	for i, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 4 {
			return nil, fmt.Errorf("%s:%d: want <name> <module> <binary> <targets>", path, i+1)
		}
		out = append(out, Image{Name: fields[0], Module: fields[1], Binary: fields[2], Targets: strings.Split(fields[3], ",")})
	}
	return out, nil
}

// LintImages checks the image list against the Dockerfile it is built from, the
// repository at root and docs/operations.md: every module and cmd directory
// exists and agrees with the doc, every target is a stage that runs as non-root.
func LintImages(root string, f *File, images []Image, doc opsdoc.Doc) []string {
	var out []string
	for _, arg := range []string{"MODULE", "BINARY"} {
		if !f.Declares(arg) {
			out = append(out, fmt.Sprintf("Dockerfile does not declare ARG %s, which scripts/images.sh passes", arg))
		}
	}
	for _, im := range images {
		if _, err := os.Stat(filepath.Join(root, im.Module, "go.mod")); err != nil {
			out = append(out, fmt.Sprintf("image %s: module %s has no go.mod", im.Name, im.Module))
		}
		cmd := filepath.Join(im.Module, "cmd", im.Binary)
		if goFiles, _ := filepath.Glob(filepath.Join(root, cmd, "*.go")); len(goFiles) == 0 {
			out = append(out, fmt.Sprintf("image %s: %s does not exist (no Go files)", im.Name, cmd))
		}
		if b, ok := doc.Binaries[im.Binary]; !ok {
			out = append(out, fmt.Sprintf("image %s: binary %s is not in docs/operations.md", im.Name, im.Binary))
		} else if b.Module != im.Module {
			out = append(out, fmt.Sprintf("image %s: module %s, docs/operations.md says %s", im.Name, im.Module, b.Module))
		}
		for _, t := range im.Targets {
			s, ok := f.Stage(t)
			if !ok {
				out = append(out, fmt.Sprintf("image %s: target %q is not a stage of the Dockerfile", im.Name, t))
				continue
			}
			if msg := userProblem(f.User(s)); msg != "" {
				out = append(out, fmt.Sprintf("image %s: target %q: %s", im.Name, t, msg))
			}
		}
	}
	return out
}
