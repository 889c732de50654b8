// Package subcmd holds the rules every command of the hirez command line
// follows: which arguments ask for help, how a command with subcommands picks
// one, what its usage and its "unknown subcommand" error say, and how a
// command's flags print their usage. Both dispatchers use it — cli/internal/app
// (the hirez command) and services/trainer/cmdline (its train, jobs and models
// commands, which the trainer's tests also run on their own) — so "-h" means
// the same everywhere. It sits beside cmdline, not in the cli module, because
// the cli module imports the trainer's and not the other way round.
package subcmd

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// ErrUsage is matched (errors.Is) by every error about how a command was
// called; dispatchers exit 2 for it.
var ErrUsage = errors.New("usage")

// Usagef returns an error matching ErrUsage that reads as the message alone.
func Usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

type usageError struct{ error }

func (usageError) Is(target error) bool { return target == ErrUsage }

// Command is a command of the hirez command line: a leaf has Run, a group has
// Subs. R is the dispatcher's run function type.
type Command[R any] struct {
	Name    string
	Summary string // one line, for the parent's usage
	Run     R
	Subs    []Command[R]
}

// isHelp reports whether arg asks for usage: a help flag as the flag package
// reads it (-h, -help, --h, --help), or the word help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--h", "--help", "help":
		return true
	}
	return false
}

// Find walks args down cmds, the subcommands of the group path ("hirez"), to
// the leaf they name, and returns that leaf, its path ("hirez jobs list") and
// the arguments left for it; the leaf's own flag parsing answers its help
// flags. At a group, a help request prints the group's usage to w and returns
// flag.ErrHelp ("help a b" reads as "a b --help", so "hirez help jobs list"
// shows the leaf's flags). A missing subcommand prints the usage too, and it
// and an unknown one return an error matching ErrUsage that names the valid
// ones. With an error, the path returned is the group's.
func Find[R any](path string, cmds []Command[R], args []string, w io.Writer) (Command[R], string, []string, error) {
	for {
		if len(args) == 0 {
			Usage(w, path, cmds)
			return Command[R]{}, path, nil, unknown(path, "", cmds)
		}
		if args[0] == "help" && len(args) > 1 {
			args = append(slices.Clone(args[1:]), "--help")
			continue
		}
		if isHelp(args[0]) {
			Usage(w, path, cmds)
			return Command[R]{}, path, nil, flag.ErrHelp
		}
		i := slices.IndexFunc(cmds, func(c Command[R]) bool { return c.Name == args[0] })
		if i < 0 {
			return Command[R]{}, path, nil, unknown(path, args[0], cmds)
		}
		c := cmds[i]
		path, args = path+" "+c.Name, args[1:]
		if len(c.Subs) == 0 {
			return c, path, args, nil
		}
		cmds = c.Subs
	}
}

// Usage writes the usage of the group path: its subcommands and their
// summaries.
func Usage[R any](w io.Writer, path string, cmds []Command[R]) {
	n := noun(path)
	fmt.Fprintf(w, "usage: %s <%s> [flags] [args]\n\n%ss:\n", path, n, n)
	width := 0
	for _, c := range cmds {
		width = max(width, len(c.Name))
	}
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\nRun '%s <%s> -h' for its usage.\n", path, n)
}

// unknown is the error for a missing (name "") or unknown subcommand of the
// group path; it names the valid ones so the user need not ask for help.
func unknown[R any](path, name string, cmds []Command[R]) error {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.Name
	}
	want := strings.Join(names, ", ")
	if i := strings.LastIndex(want, ", "); i >= 0 {
		want = want[:i] + " or " + want[i+2:]
	}
	if name == "" {
		return Usagef("missing %s: want %s", noun(path), want)
	}
	return Usagef("unknown %s %q: want %s", noun(path), name, want)
}

// noun names what a group holds: the top level ("hirez") has commands, the
// groups below it subcommands.
func noun(path string) string {
	if strings.Contains(path, " ") {
		return "subcommand"
	}
	return "command"
}

// NewFlags returns the FlagSet of the leaf command path. It returns errors
// instead of exiting, so the dispatcher chooses the exit code, and its usage —
// on w, for a help flag or a bad one — reads "usage: <path> <synopsis>" and
// then the flags.
func NewFlags(path, synopsis string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "usage: %s %s\n\nflags:\n", path, synopsis)
		fs.PrintDefaults()
	}
	return fs
}
