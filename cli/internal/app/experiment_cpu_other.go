//go:build !unix

package app

import "time"

// processCPU is unavailable here: --budget-clock defaults to wall, and cpu is
// refused with a usage error.
func processCPU() (time.Duration, bool) { return 0, false }
