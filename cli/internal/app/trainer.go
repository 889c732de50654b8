package app

import (
	"context"
	"errors"

	"github.com/hirez-ml/hirez/services/trainer/cmdline"
)

// trainerCommands are the trainer service's client commands (train, jobs,
// models), implemented beside the service in services/trainer/cmdline.
func trainerCommands() []Command {
	var out []Command
	for _, c := range cmdline.Commands() {
		out = append(out, Command{Name: c.Name, Summary: c.Summary, Run: func(ctx context.Context, env Env, args []string) error {
			err := c.Run(ctx, args, env.Stdout, env.Stderr)
			if errors.Is(err, cmdline.ErrUsage) {
				return usagef("%v", err)
			}
			return err
		}})
	}
	return out
}
