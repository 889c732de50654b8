// Command hirez is the offline tool of hirez: train models locally, upscale
// images, evaluate models and run the study's comparison — no server needed.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hirez-ml/hirez/cli/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Main(ctx, app.Env{Stdout: os.Stdout, Stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}
