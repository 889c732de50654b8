// Package opsdoc reads the contract in docs/operations.md — which binary lives in
// which module and listens on which ports, and which HIREZ_* variables exist — so
// that manifests and Dockerfiles are checked against the document people read,
// and drift between them fails a test.
package opsdoc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Binary is one row of the "Binaries" table.
type Binary struct {
	Name   string // e.g. "gateway"
	Module string // module directory, e.g. "services/generator"
	// Ports by container port name: "grpc" for the gRPC port, then the extra ports
	// named by their first word ("metrics 9090" → "metrics", "HTTP/JSON 8080" → "http").
	Ports map[string]int32
}

// Doc is what the manifests must agree with.
type Doc struct {
	Binaries map[string]Binary
	Env      map[string]bool // every HIREZ_* name the document mentions
}

// Load parses the document at path.
func Load(path string) (Doc, error) {
	f, err := os.Open(path)
	if err != nil {
		return Doc{}, fmt.Errorf("open operations doc: %w", err)
	}
	defer f.Close()
	d, err := Parse(f)
	if err != nil {
		return Doc{}, fmt.Errorf("parse %s: %w", path, err)
	}
	return d, nil
}

var (
	envRE  = regexp.MustCompile(`\bHIREZ_[A-Z0-9_]+\b`)
	portRE = regexp.MustCompile(`^([A-Za-z][A-Za-z/]*)\s+(\d+)$`)
)

// Parse reads the Binaries table (the first table under a "## Binaries" heading,
// columns: binary | module | gRPC port | extra port | …) and every HIREZ_* name.
func Parse(r io.Reader) (Doc, error) {
	d := Doc{Binaries: map[string]Binary{}, Env: map[string]bool{}}
	sc := bufio.NewScanner(r)
	section := ""
	header := true // the next table row in the section is its header
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		for _, m := range envRE.FindAllString(line, -1) {
			d.Env[m] = true
		}
		if strings.HasPrefix(line, "#") {
			section = strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
			header = true
			continue
		}
		if section != "binaries" || !strings.HasPrefix(line, "|") {
			continue
		}
		cells := splitRow(line)
		if header {
			header = false
			if len(cells) < 4 || !strings.Contains(strings.ToLower(cells[2]), "grpc") {
				return Doc{}, fmt.Errorf("binaries table: unexpected header %q", line)
			}
			continue
		}
		if isRule(cells) {
			continue
		}
		if len(cells) < 4 {
			return Doc{}, fmt.Errorf("binaries table: short row %q", line)
		}
		b := Binary{Name: unquote(cells[0]), Module: unquote(cells[1]), Ports: map[string]int32{}}
		if g := unquote(cells[2]); !isDash(g) {
			p, err := parsePort(g)
			if err != nil {
				return Doc{}, fmt.Errorf("binary %s: gRPC port: %w", b.Name, err)
			}
			b.Ports["grpc"] = p
		}
		if extra := unquote(cells[3]); !isDash(extra) {
			for _, part := range strings.Split(extra, ",") {
				m := portRE.FindStringSubmatch(strings.TrimSpace(part))
				if m == nil {
					return Doc{}, fmt.Errorf("binary %s: extra port %q: want \"<name> <port>\"", b.Name, part)
				}
				p, err := parsePort(m[2])
				if err != nil {
					return Doc{}, fmt.Errorf("binary %s: %w", b.Name, err)
				}
				name := strings.ToLower(strings.SplitN(m[1], "/", 2)[0])
				b.Ports[name] = p
			}
		}
		d.Binaries[b.Name] = b
	}
	if err := sc.Err(); err != nil {
		return Doc{}, err
	}
	if len(d.Binaries) == 0 {
		return Doc{}, fmt.Errorf("no \"## Binaries\" table found")
	}
	return d, nil
}

func splitRow(line string) []string {
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	cells := strings.Split(line, "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells
}

func isRule(cells []string) bool {
	for _, c := range cells {
		if strings.Trim(c, "-: ") != "" {
			return false
		}
	}
	return true
}

func unquote(s string) string { return strings.Trim(s, "`") }

func isDash(s string) bool { return s == "" || s == "-" || s == "–" || s == "—" }

func parsePort(s string) (int32, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n <= 0 || n > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return int32(n), nil
}
