package app

import (
	"context"

	"github.com/hirez-ml/hirez/services/trainer/cmdline"
)

// trainerCommands are the trainer service's client commands (train, jobs,
// models), implemented beside the service in services/trainer/cmdline.
func trainerCommands() []Command {
	var out []Command
	for _, c := range cmdline.Commands() {
		out = append(out, fromTrainer(c))
	}
	return out
}

// fromTrainer mounts a trainer command, and its subcommands, under Main.
func fromTrainer(c cmdline.Command) Command {
	out := Command{Name: c.Name, Summary: c.Summary}
	if run := c.Run; run != nil {
		out.Run = func(ctx context.Context, env Env, args []string) error {
			return run(ctx, args, env.Stdout, env.Stderr)
		}
	}
	for _, s := range c.Subs {
		out.Subs = append(out.Subs, fromTrainer(s))
	}
	return out
}
