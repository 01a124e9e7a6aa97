package history

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkCheck checks generated histories of 16 clients on 4 resources
// with 1% unknown outcomes.
func BenchmarkCheck(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		ops := Generate(GenConfig{Seed: 1, Ops: n, Clients: 16, Resources: 4, Unknown: 0.01})
		b.Run(fmt.Sprintf("ops=%d", n), func(b *testing.B) {
			for b.Loop() {
				got := Check(ops, Options{Timeout: time.Minute})
				require.True(b, got.OK(), got.Details)
			}
		})
		b.Run(fmt.Sprintf("ops=%d/visualize", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "h.html")
			for b.Loop() {
				got := Check(ops, Options{Timeout: time.Minute, VisualizePath: path})
				require.True(b, got.OK(), got.Details)
			}
		})
	}
}
