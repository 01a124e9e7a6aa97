package history

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func genConfigs() []GenConfig {
	var cfgs []GenConfig
	for seed := uint64(1); seed <= 12; seed++ {
		cfgs = append(cfgs, GenConfig{
			Seed: seed, Ops: 1500, Clients: 4 + int(seed%3)*4, Resources: 1 + int(seed%3),
			Unknown: 0.01 * float64(seed%4), Pause: 0.05, TTL: 200 * time.Millisecond,
		})
	}
	return cfgs
}

func TestGenerateIsDeterministicAndValid(t *testing.T) {
	cfg := GenConfig{Seed: 42, Ops: 500, Unknown: 0.05}
	got, again := Generate(cfg), Generate(cfg)
	require.Equal(t, got, again)
	require.Len(t, got, 500)
	for i, op := range got {
		require.NoError(t, op.Validate(), "op %d", i)
	}
	other := Generate(GenConfig{Seed: 43, Ops: 500, Unknown: 0.05})
	assert.NotEqual(t, got, other)
}

func TestGeneratedHistoriesAreLinearizable(t *testing.T) {
	var stale, overlaps, unknown int
	for _, cfg := range genConfigs() {
		t.Run(fmt.Sprintf("seed=%d", cfg.Seed), func(t *testing.T) {
			ops := Generate(cfg)
			got := Check(ops, Options{Timeout: 20 * time.Second})
			assert.Equal(t, Linearizable, got.Lock, "%v", got.Details)
			assert.Equal(t, Linearizable, got.Resource, "%v", got.Details)
			stale += got.Counts.Stale
			overlaps += got.Overlap.Count
			unknown += got.Counts.Acquire.Unknown + got.Counts.Release.Unknown + got.Counts.Write.Unknown
		})
	}
	// The generated histories must exercise the interesting cases.
	assert.Positive(t, stale, "no stale (fenced) request in any generated history")
	assert.Positive(t, overlaps, "no overlapping beliefs in any generated history")
	assert.Positive(t, unknown, "no unknown outcome in any generated history")
}

// injectDoubleGrant adds an intruder's successful acquire right after a
// successful acquire of the victim, before its release is called and before
// its lease can expire.
func injectDoubleGrant(ops []Op, rng *rand.Rand) ([]Op, bool) {
	var cands []int
	for i, op := range ops {
		if op.Op != OpAcquire || op.Outcome != OK {
			continue
		}
		x := *op.Return + 1
		if x >= op.Call+seconds(op.Output.TTL) {
			continue
		}
		ok := true
		for _, o := range ops[i+1:] {
			if o.Resource == op.Resource && o.Input.LockToken == op.Output.LockToken && o.Call <= x+1 {
				ok = false // the victim released or renewed already
				break
			}
		}
		if ok {
			cands = append(cands, i)
		}
	}
	if len(cands) == 0 {
		return nil, false
	}
	v := ops[cands[rng.IntN(len(cands))]]
	x := *v.Return + 1
	ttl := 1.0
	intruder := Op{Client: "intruder", Op: OpAcquire, Resource: v.Resource, Input: Input{TTL: &ttl},
		Output: Output{LockToken: "intruder-token", FencingToken: v.Output.FencingToken + rng.Int64N(2), TTL: &ttl},
		Call:   x, Return: &x, Outcome: OK}
	out := slices.Clone(ops)
	return append(out, intruder), true
}

func TestInjectedDoubleGrantIsAlwaysCaught(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	caught := 0
	for _, cfg := range genConfigs() {
		ops, ok := injectDoubleGrant(Generate(cfg), rng)
		if !ok {
			continue
		}
		t.Run(fmt.Sprintf("seed=%d", cfg.Seed), func(t *testing.T) {
			got := Check(ops, Options{Timeout: 20 * time.Second})
			assert.Equal(t, Violated, got.Lock, "%v", got.Details)
			assert.Equal(t, Linearizable, got.Resource)
			caught++
		})
	}
	assert.GreaterOrEqual(t, caught, 10, "too few histories to inject into")
}

func TestInjectedLostUpdateIsAlwaysCaught(t *testing.T) {
	for _, cfg := range genConfigs() {
		t.Run(fmt.Sprintf("seed=%d", cfg.Seed), func(t *testing.T) {
			ops := Generate(cfg)
			// Replay the first successful read-modify-write later, as a
			// client whose write is not fenced.
			i := slices.IndexFunc(ops, func(op Op) bool { return op.Op == OpWrite && op.Outcome == OK })
			require.GreaterOrEqual(t, i, 0)
			w := ops[i]
			var end int64
			for _, op := range ops {
				end = max(end, op.ret(op.Call))
			}
			rv := *w.Input.Value - 1
			r := Op{Client: "zombie", Op: OpRead, Resource: w.Resource, Output: Output{Value: &rv}, Call: w.Call, Return: ptr(w.Call + 1), Outcome: OK}
			z := w
			z.Client, z.Call, z.Return = "zombie", end+10, ptr(end+20)
			got := Check(append(slices.Clone(ops), r, z), Options{Timeout: 20 * time.Second})
			assert.Equal(t, Violated, got.Resource, "%v", got.Details)
		})
	}
}
