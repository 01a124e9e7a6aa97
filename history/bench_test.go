package history

import (
	"fmt"
	"math/rand/v2"
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

// BenchmarkExplain measures explaining violations on recorded negative
// controls and on generated histories of 16 clients on 4 resources with one
// injected violation: "check" is Check alone, "explain" Check with Explain.
func BenchmarkExplain(b *testing.B) {
	type hist struct {
		name string
		ops  []Op
	}
	hs := []hist{
		{"recorded/unsafe-check-then-set", readRun(b, "unsafe-check-then-set")},
		{"recorded/gc-pause-past-lease-unfenced", readRun(b, "gc-pause-past-lease-unfenced")},
		{"recorded/client-clock-skew-unfenced", readRun(b, "client-clock-skew-unfenced")},
	}
	for _, n := range []int{1_000, 3_000, 10_000} {
		cfg := GenConfig{Seed: 1, Ops: n, Clients: 16, Resources: 4}
		lost, _, _ := injections[4].do(Generate(cfg), nil)
		hs = append(hs, hist{fmt.Sprintf("generated/lost-update/ops=%d", n), lost})
		double, ok := injectDoubleGrant(Generate(cfg), rand.New(rand.NewPCG(1, 1)))
		require.True(b, ok)
		hs = append(hs, hist{fmt.Sprintf("generated/double-grant/ops=%d", n), double})
	}
	for _, h := range hs {
		for _, explain := range []bool{false, true} {
			name := h.name + "/check"
			if explain {
				name = h.name + "/explain"
			}
			b.Run(name, func(b *testing.B) {
				for b.Loop() {
					got := Check(h.ops, Options{Timeout: time.Minute, Explain: explain, ExplainBudget: time.Minute})
					require.False(b, got.OK())
					if explain {
						require.NotEmpty(b, got.Explanations)
						for _, e := range got.Explanations {
							require.False(b, e.Truncated, e.Text)
						}
					}
				}
			})
		}
	}
}
