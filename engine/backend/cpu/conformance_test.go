//go:build cgo

package cpu

import (
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/backendtest"
)

// TestConformance runs the shared harness against ref.
func TestConformance(t *testing.T) {
	be, err := New(Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	backendtest.Run(t, be)
}
