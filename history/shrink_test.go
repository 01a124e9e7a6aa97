package history

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shrinkConfigs are generated histories small enough to check hundreds of
// subsets of under -race: contended, with pauses (stale requests), renews
// and unknown outcomes.
func shrinkConfigs() []GenConfig {
	var cfgs []GenConfig
	for seed := uint64(1); seed <= 8; seed++ {
		cfgs = append(cfgs, GenConfig{
			Seed: seed, Ops: 400, Clients: 3 + int(seed%3)*2, Resources: 1 + int(seed%2),
			Unknown: 0.01 * float64(seed%3), Pause: 0.08, Renew: 0.2, TTL: 200 * time.Millisecond,
		})
	}
	return cfgs
}

func unlimited() bool { return false }

// randomCandidate picks a random set of units and, among their operations,
// random ones to drop (lock) or weaken (resource) the ways the shrinker
// may, and returns the shrinker's candidate for them.
func randomCandidate(s *shrinker, rng *rand.Rand) []porcupine.Operation {
	keep := []float64{0.05, 0.2, 0.5, 0.8, 0.95}[rng.IntN(5)]
	var kept []int
	switch rng.IntN(3) {
	case 0: // a window, as the shrinker's first pass keeps
		lo := rng.IntN(len(s.units))
		hi := lo + 1 + rng.IntN(len(s.units)-lo)
		for u := lo; u < hi; u++ {
			kept = append(kept, u)
		}
	default:
		for u := range s.units {
			if rng.Float64() < keep {
				kept = append(kept, u)
			}
		}
	}
	s.base, s.weak = nil, map[int]bool{}
	dropped := map[int]bool{}
	in := s.members(kept, nil)
	if !s.resource && rng.IntN(2) == 0 {
		s.base = map[int]bool{}
		for i := range s.ops {
			if s.ops[i].Input.(*minput).claim {
				s.base[i] = true
			}
		}
	}
	for i := range s.ops {
		if !in[i] || rng.IntN(3) != 0 {
			continue
		}
		if s.resource {
			if m := s.ops[i].Input.(*minput); m.readOK && m.write != writeNone {
				s.weak[i] = true
			}
		} else if s.droppable(i, s.members(kept, dropped)) {
			dropped[i] = true
		}
	}
	return s.candidate(kept, dropped)
}

// TestShrinkerNeverTurnsALinearizableHistoryIntoAViolation is the
// soundness of the shrinker: every candidate it may build from a
// linearizable partition (any units, any allowed drops and weakenings) is
// linearizable, so a set it reports is a violation of the whole history and
// not an artefact of what it removed. On a linearizable partition it
// reports nothing.
func TestShrinkerNeverTurnsALinearizableHistoryIntoAViolation(t *testing.T) {
	histories := map[string][]Op{"gc-pause-past-lease-fenced (recorded)": readRun(t, "gc-pause-past-lease-fenced")}
	for _, cfg := range shrinkConfigs() {
		histories[fmt.Sprintf("generated seed=%d", cfg.Seed)] = Generate(cfg)
	}
	candidates := 0
	for name, ops := range histories {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(len(ops)), 1))
			b := build(ops)
			model := newModel(b.tokens)
			for _, p := range b.parts {
				_, ok := newShrinker(model, p, 10*time.Second, unlimited).run()
				require.False(t, ok, "%s %s is linearizable: nothing to explain", p.model, p.resource)
				s := newShrinker(model, p, 10*time.Second, unlimited)
				for range 200 {
					cand := randomCandidate(s, rng)
					got := porcupine.CheckOperationsTimeout(model, cand, 10*time.Second)
					require.NotEqual(t, porcupine.Illegal, got, "%s %s: a candidate of %d operations of a linearizable partition is a violation",
						p.model, p.resource, len(cand))
					candidates++
				}
			}
		})
	}
	t.Logf("%d candidates checked", candidates)
}

// TestNaiveDeletionWouldLie shows why candidates are built with care:
// deleting operations one by one from linearizable histories (a release
// between two grants, the write of a value read later) makes violations out
// of nothing.
func TestNaiveDeletionWouldLie(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	lies := 0
	for _, cfg := range shrinkConfigs()[:3] {
		b := build(Generate(cfg))
		model := newModel(b.tokens)
		for _, p := range b.parts {
			for range 20 {
				var cand []porcupine.Operation
				for _, op := range p.ops {
					if rng.IntN(2) == 0 {
						cand = append(cand, op)
					}
				}
				if porcupine.CheckOperations(model, cand) == false {
					lies++
				}
			}
		}
	}
	assert.Positive(t, lies, "plain deletion never produced a false violation: the soundness test would prove nothing")
}

// injection adds one violation of a known kind to a linearizable history
// and names the record that must be in its explanation.
type injection struct {
	name  string
	kinds []Kind
	do    func(ops []Op, rng *rand.Rand) ([]Op, Op, bool)
}

func historySpan(ops []Op) (end int64, ttl int64) {
	for _, op := range ops {
		end = max(end, op.Call, op.ret(0))
		ttl = max(ttl, seconds(op.Input.TTL))
	}
	return end, ttl
}

var injections = []injection{
	{"double grant", []Kind{KindDoubleGrant}, func(ops []Op, rng *rand.Rand) ([]Op, Op, bool) {
		out, ok := injectDoubleGrant(ops, rng)
		if !ok {
			return nil, Op{}, false
		}
		return out, out[len(out)-1], true
	}},
	{"fencing token went back", []Kind{KindFencingBack}, func(ops []Op, _ *rand.Rand) ([]Op, Op, bool) {
		end, ttl := historySpan(ops)
		at, ttlS := end+3*ttl, 0.2
		bad := Op{Client: "intruder", Op: OpAcquire, Resource: "res-0", Input: Input{TTL: &ttlS},
			Output: Output{LockToken: "intruder-token", FencingToken: 1, TTL: &ttlS}, Call: at, Return: ptr(at + 1000), Outcome: OK}
		return append(slices.Clone(ops), bad), bad, true
	}},
	{"release by a non-holder", []Kind{KindNonHolder}, func(ops []Op, _ *rand.Rand) ([]Op, Op, bool) {
		i := slices.IndexFunc(ops, func(op Op) bool { return op.Op == OpRelease && op.Outcome == OK })
		if i < 0 {
			return nil, Op{}, false
		}
		end, ttl := historySpan(ops)
		again := ops[i]
		again.Call, again.Return = end+3*ttl, ptr(end+3*ttl+1000)
		return append(slices.Clone(ops), again), again, true
	}},
	{"stale write accepted", []Kind{KindStaleWrite}, func(ops []Op, _ *rand.Rand) ([]Op, Op, bool) {
		for i, op := range ops {
			if op.Op != OpWrite || !op.Output.Rejected {
				continue
			}
			out := slices.Clone(ops)
			out[i].Output.Rejected, out[i].Outcome = false, OK
			if Check(out, Options{}).Resource != Violated {
				continue // nobody had written since: not a violation
			}
			return out, out[i], true
		}
		return nil, Op{}, false
	}},
	{"lost update", []Kind{KindLostUpdate, KindStaleWrite}, func(ops []Op, _ *rand.Rand) ([]Op, Op, bool) {
		i := slices.IndexFunc(ops, func(op Op) bool { return op.Op == OpWrite && op.Outcome == OK })
		w := ops[i]
		end, _ := historySpan(ops)
		rv := *w.Input.Value - 1
		r := Op{Client: "zombie", Op: OpRead, Resource: w.Resource, Output: Output{Value: &rv}, Call: w.Call, Return: ptr(w.Call + 1), Outcome: OK}
		z := w
		z.Client, z.Call, z.Return = "zombie", end+10, ptr(end+20)
		return append(slices.Clone(ops), r, z), z, true
	}},
	{"read of a value nobody wrote", []Kind{KindPhantomRead}, func(ops []Op, _ *rand.Rand) ([]Op, Op, bool) {
		end, _ := historySpan(ops)
		v := int64(1_000_000)
		r := Op{Client: "reader", Op: OpRead, Resource: "res-0", Output: Output{Value: &v}, Call: end + 10, Return: ptr(end + 20), Outcome: OK}
		return append(slices.Clone(ops), r), r, true
	}},
}

// TestExplainInjectedViolations: one violation injected into a
// linearizable history is explained by at most 4 operations, including the
// injected one, of the right kind, that are themselves a violation.
func TestExplainInjectedViolations(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	for _, inj := range injections {
		t.Run(inj.name, func(t *testing.T) {
			explained := 0
			for _, cfg := range shrinkConfigs() {
				ops, bad, ok := inj.do(Generate(cfg), rng)
				if !ok {
					continue
				}
				res := Check(ops, Options{Explain: true, Timeout: time.Minute, ExplainBudget: time.Minute})
				require.Len(t, res.Explanations, 1, "seed %d: %v", cfg.Seed, res.Details)
				e := res.Explanations[0]
				assert.Contains(t, inj.kinds, e.Kind, "seed %d: %s", cfg.Seed, e.Text)
				// An unknown outcome may take effect at any time: pinning it
				// down can take one more operation (a read and its write).
				limit := 4
				if slices.ContainsFunc(e.Operations, func(op Op) bool { return op.Outcome == Unknown }) {
					limit = 6
				}
				assert.LessOrEqual(t, len(e.Operations), limit, "seed %d: %s", cfg.Seed, e.Text)
				assert.Contains(t, append(slices.Clone(e.Operations), e.Context...), bad, "seed %d: %s", cfg.Seed, e.Text)
				assert.False(t, e.Truncated)
				recheck(t, e)
				explained++
			}
			assert.GreaterOrEqual(t, explained, 4, "too few histories to inject into")
		})
	}
}

// TestShrinkerStopsAtItsBudget: out of time, the search stops, keeps the
// smallest set it proved, and says so.
func TestShrinkerStopsAtItsBudget(t *testing.T) {
	ops, _, _ := injections[4].do(Generate(GenConfig{Seed: 5, Ops: 2000, Clients: 6, Resources: 1}), nil)
	b := build(ops)
	model := newModel(b.tokens)
	i := slices.IndexFunc(b.parts, func(p partition) bool { return p.model == ModelResource })

	for _, budget := range []int{0, 1, 3, 8} {
		t.Run(fmt.Sprintf("checks=%d", budget), func(t *testing.T) {
			s := newShrinker(model, b.parts[i], 10*time.Second, nil)
			s.expired = func() bool { return s.checks >= budget }
			got, ok := s.run()
			require.True(t, ok)
			assert.True(t, s.stopped, "the search ran out of checks")
			assert.LessOrEqual(t, s.checks, budget)
			cand := append(slices.Clone(got.core), got.context...)
			if budget == 0 {
				assert.False(t, got.proven)
				assert.Len(t, got.core, len(b.parts[i].ops), "nothing proven: the whole partition")
				return
			}
			assert.True(t, got.proven, "the whole partition is checked first")
			if budget > 1 {
				assert.Less(t, len(got.core), len(b.parts[i].ops), "the window search got somewhere")
			}
			assert.Equal(t, porcupine.Illegal, porcupine.CheckOperationsTimeout(model, cand, 10*time.Second), "what it keeps is a violation")
		})
	}

	t.Run("explanation", func(t *testing.T) {
		s := newShrinker(model, b.parts[i], 10*time.Second, nil)
		s.expired = func() bool { return s.checks >= 3 }
		e := explainPartition(ops, s, b.parts[i], nil, historyEnd(ops))
		require.NotNil(t, e)
		assert.True(t, e.Truncated)
		assert.False(t, e.Unproven)
		assert.Equal(t, 3, e.Checks)
		assert.Contains(t, e.Text, "stopped early after 3 checks")
		recheck(t, *e)
	})

	t.Run("Check", func(t *testing.T) {
		res := Check(ops, Options{Explain: true, ExplainBudget: time.Nanosecond})
		require.Len(t, res.Explanations, 1)
		e := res.Explanations[0]
		assert.True(t, e.Truncated)
		assert.True(t, e.Unproven)
		assert.Contains(t, e.Text, "decided no set within the time budget")
		assert.Contains(t, e.Text, "too many to tell one by one")
		assert.Less(t, e.Elapsed, 5*time.Second, "a budget of 1ns stops the search at once")
	})
}

// TestExplainRecordedControls explains histories recorded by `locksim run`
// of the negative controls (trimmed), with their fault lists: at most 4
// operations, the right kind, the planted fault blamed.
func TestExplainRecordedControls(t *testing.T) {
	tests := []struct {
		run    string
		model  string
		kind   Kind
		faults []int
	}{
		{"unsafe-check-then-set", ModelLock, KindDoubleGrant, []int{}}, // the fault is the lock servers' code: no window
		{"gc-pause-past-lease-unfenced", ModelResource, KindStaleWrite, []int{1}},
		{"client-clock-skew-unfenced", ModelResource, KindStaleWrite, []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.run, func(t *testing.T) {
			ops := readRun(t, tt.run)
			res := Check(ops, Options{Explain: true, Annotations: readFaults(t, tt.run)})
			i := slices.IndexFunc(res.Explanations, func(e Explanation) bool { return e.Model == tt.model })
			require.GreaterOrEqual(t, i, 0, "%v", res.Details)
			e := res.Explanations[i]
			assert.Equal(t, tt.kind, e.Kind, e.Text)
			assert.LessOrEqual(t, len(e.Operations), 4, e.Text)
			assert.Equal(t, tt.faults, e.Faults, e.Text)
			assert.False(t, e.Truncated)
			recheck(t, e)
			t.Log(e.Text)
		})
	}
}
