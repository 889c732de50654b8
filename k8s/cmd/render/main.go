// Command render builds kustomize overlays with the same engine and checks as the
// k8s tests, and prints the YAML for kubectl:
//
//	go run ./cmd/render overlays/prod | kubectl apply -f -
//	go run ./cmd/render -check overlays/dev overlays/prod   # policy only, no output
//
// Run it from k8s/ (or pass paths from wherever you are); docs/operations.md is
// found by walking up from the first overlay.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/hirez-ml/hirez/k8s/internal/manifest"
	"github.com/hirez-ml/hirez/k8s/internal/opsdoc"
	"github.com/hirez-ml/hirez/k8s/internal/policy"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("render", flag.ContinueOnError)
	fl.SetOutput(stderr)
	check := fl.Bool("check", false, "only check the policy; print nothing but violations")
	noPolicy := fl.Bool("no-policy", false, "print even when the policy fails")
	docsPath := fl.String("docs", "", "docs/operations.md (default: found above the first overlay)")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: render [-check] [-no-policy] [-docs FILE] OVERLAY_DIR...")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() == 0 {
		fl.Usage()
		return errors.New("no overlay given")
	}
	if *docsPath == "" {
		p, err := findDocs(fl.Arg(0))
		if err != nil {
			return err
		}
		*docsPath = p
	}
	doc, err := opsdoc.Load(*docsPath)
	if err != nil {
		return err
	}
	failed := false
	for i, dir := range fl.Args() {
		b, err := manifest.BuildDir(filesys.MakeFsOnDisk(), dir)
		if err != nil {
			return err
		}
		violations := policy.Check(b.Objects, doc)
		for _, v := range violations {
			fmt.Fprintf(stderr, "%s: %s\n", dir, v)
		}
		if len(violations) > 0 {
			failed = true
			if !*noPolicy {
				continue
			}
		}
		if *check {
			continue
		}
		if i > 0 {
			fmt.Fprintln(stdout, "---")
		}
		if _, err := stdout.Write(b.YAML); err != nil {
			return err
		}
	}
	if failed {
		return errors.New("policy violations (see above)")
	}
	return nil
}

// findDocs walks up from dir to the directory that holds docs/operations.md.
func findDocs(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "docs", "operations.md")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no docs/operations.md above %s; pass -docs", dir)
		}
	}
}
