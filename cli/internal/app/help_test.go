package app

import (
	"slices"
	"strings"
	"testing"
)

// TestHelp asks every command, group and subcommand for its usage in each way
// a user might, and checks each group's answer to a missing and an unknown
// subcommand. It walks commands(), the table Main dispatches on, so a new
// command is covered without editing this test.
func TestHelp(t *testing.T) {
	type node struct {
		path []string // after "hirez"
		subs []Command
	}
	var nodes []node
	var walk func(path []string, cmds []Command)
	walk = func(path []string, cmds []Command) {
		nodes = append(nodes, node{path, cmds})
		for _, c := range cmds {
			p := append(slices.Clone(path), c.Name)
			if len(c.Subs) > 0 {
				walk(p, c.Subs)
			} else {
				nodes = append(nodes, node{path: p})
			}
		}
	}
	walk(nil, commands())
	// The ones issue #12 found answering "unknown subcommand" to --help.
	for _, want := range []string{"jobs", "jobs list", "models", "models rm", "eval", "eval sr"} {
		if !slices.ContainsFunc(nodes, func(n node) bool { return strings.Join(n.path, " ") == want }) {
			t.Errorf("commands() has no %q", want)
		}
	}

	for _, n := range nodes {
		usage := strings.Join(append([]string{"usage: hirez"}, n.path...), " ") + " "
		asks := [][]string{append(slices.Clone(n.path), "-h"), append(slices.Clone(n.path), "-help"),
			append(slices.Clone(n.path), "--help"), append([]string{"help"}, n.path...)}
		for _, args := range asks {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				code, stdout, stderr := hirez(t, args...)
				if code != ExitOK || !strings.Contains(stdout+stderr, usage) {
					t.Errorf("exit %d, output %q; want %d and %q", code, stdout+stderr, ExitOK, usage)
				}
			})
		}
		if n.subs == nil {
			continue
		}
		noun := "subcommand"
		if len(n.path) == 0 {
			noun = "command"
		}
		for _, tc := range []struct {
			args []string
			want string
		}{
			{n.path, "missing " + noun + ": want "},
			{append(slices.Clone(n.path), "frobnicate"), "unknown " + noun + ` "frobnicate": want `},
		} {
			t.Run(strings.Join(append(slices.Clone(tc.args), "(usage error)"), " "), func(t *testing.T) {
				code, _, stderr := hirez(t, tc.args...)
				if code != ExitUsage || !strings.Contains(stderr, tc.want) {
					t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, ExitUsage, tc.want)
				}
				for _, c := range n.subs {
					if !strings.Contains(stderr, c.Name) {
						t.Errorf("stderr %q does not name %q", stderr, c.Name)
					}
				}
			})
		}
	}
}
