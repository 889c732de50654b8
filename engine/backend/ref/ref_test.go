package ref_test

import (
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/backendtest"
	"github.com/hirez-ml/hirez/engine/backend/ref"
)

// The reference passes its own harness trivially; this keeps the harness and
// ref's argument checks honest.
func TestConformance(t *testing.T) {
	b := ref.New()
	defer b.Close()
	backendtest.Run(t, b)
}

func BenchmarkConv2D(b *testing.B) {
	b.Run("ref", func(b *testing.B) { backendtest.BenchConv2D(b, ref.New()) })
}
