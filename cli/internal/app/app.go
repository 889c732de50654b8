// Package app is the hirez command line: a small dispatcher and one file per
// command. A command is a Command value in commands(); adding one is a new
// file and one line there, and TestHelp covers its -h without more.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hirez-ml/hirez/services/trainer/cmdline/subcmd"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Env is what a command may touch of the outside world.
type Env struct {
	Stdout, Stderr io.Writer
}

// RunFunc runs a leaf command: it parses args (after the command's name) and
// does the work. Errors matching ErrUsage exit with code 2, others with 1.
type RunFunc func(ctx context.Context, env Env, args []string) error

// Command is a command or subcommand: a leaf has Run, a group ("eval", "jobs")
// has Subs. Main dispatches on commands(); help flags and unknown subcommands
// follow package subcmd's rules, the ones the trainer's commands follow too.
type Command = subcmd.Command[RunFunc]

// ErrUsage marks an error in how the command was called.
var ErrUsage = subcmd.ErrUsage

// usagef is an ErrUsage with a message a person can act on.
func usagef(format string, args ...any) error {
	return subcmd.Usagef(format, args...)
}

func commands() []Command {
	return append([]Command{
		generateCommand(),
		labelsCommand(),
		upscaleCommand(),
		trainLocalCommand(),
		evalCommand(),
		plotCommand(),
		experimentCommand(),
		trainDefaultsCommand(),
	}, trainerCommands()...)
}

// Main runs the command line args and returns the exit code.
func Main(ctx context.Context, env Env, args []string) int {
	c, path, rest, err := subcmd.Find("hirez", commands(), args, env.Stderr)
	if err != nil {
		// A help request, or a missing or unknown (sub)command, whose error
		// names the valid ones: no hint needed.
		return report(env.Stderr, path, err, "")
	}
	return report(env.Stderr, path, c.Run(ctx, env, rest), "Run '"+path+" -h' for its flags.\n")
}

// report prints err of the command path (then hint, after a usage error) and
// returns the exit code.
func report(w io.Writer, path string, err error, hint string) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(w, "%s: %v\n%s", path, err, hint)
		return ExitUsage
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(w, "%s: interrupted\n", path)
		return ExitFailure
	default:
		fmt.Fprintf(w, "%s: %v\n", path, err)
		return ExitFailure
	}
}

// newFlags makes the FlagSet of "hirez <name>": it reports errors instead of
// exiting, with usage on env.Stderr.
func newFlags(env Env, name, synopsis string) *flag.FlagSet {
	return subcmd.NewFlags("hirez "+name, synopsis, env.Stderr)
}

// parse parses args and turns flag errors (already printed) into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// isTerminal reports whether w is a character device (a terminal), for the
// progress bar; pipes and files get plain lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
