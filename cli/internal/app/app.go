// Package app is the hirez command line: a small dispatcher and one file per
// subcommand. A subcommand is a Command value in commands(); adding one (the
// serving side's generate or models, say) is a new file and one line there.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
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

// Command is one subcommand.
type Command struct {
	Name    string
	Summary string
	// Run parses args (after the subcommand's name) and does the work. Errors
	// wrapping ErrUsage exit with code 2, others with 1.
	Run func(ctx context.Context, env Env, args []string) error
}

// ErrUsage marks an error in how the command was called.
var ErrUsage = errors.New("usage")

// usagef is an ErrUsage with a message a person can act on.
func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

func commands() []Command {
	return append([]Command{
		generateCommand(),
		upscaleCommand(),
		trainLocalCommand(),
		evalCommand(),
		experimentCommand(),
		trainDefaultsCommand(),
	}, trainerCommands()...)
}

// Main runs the command line args and returns the exit code.
func Main(ctx context.Context, env Env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(env.Stderr)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	for _, c := range commands() {
		if c.Name != args[0] {
			continue
		}
		err := c.Run(ctx, env, args[1:])
		switch {
		case err == nil:
			return ExitOK
		case errors.Is(err, flag.ErrHelp):
			return ExitOK
		case errors.Is(err, ErrUsage):
			fmt.Fprintf(env.Stderr, "hirez %s: %v\nRun 'hirez %s -h' for its flags.\n", c.Name, strings.TrimPrefix(err.Error(), "usage: "), c.Name)
			return ExitUsage
		case errors.Is(err, context.Canceled):
			fmt.Fprintf(env.Stderr, "hirez %s: interrupted\n", c.Name)
			return ExitFailure
		default:
			fmt.Fprintf(env.Stderr, "hirez %s: %v\n", c.Name, err)
			return ExitFailure
		}
	}
	fmt.Fprintf(env.Stderr, "hirez: unknown command %q\n\n", args[0])
	printUsage(env.Stderr)
	return ExitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: hirez <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-15s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintln(w, "\nRun 'hirez <command> -h' for a command's flags.")
}

// newFlags makes a FlagSet that reports errors instead of exiting, with usage on
// env.Stderr.
func newFlags(env Env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("hirez "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: hirez %s %s\n\nflags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
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
