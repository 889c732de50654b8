//go:build !unix

package app

import "time"

// processCPU is unavailable here; the experiment falls back to wall-clock budgets.
func processCPU() (time.Duration, bool) { return 0, false }
