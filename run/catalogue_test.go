package run

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenarios"
)

var artifacts = flag.String("artifacts", filepath.Join(os.TempDir(), "locksim-artifacts"),
	"where a failing scenario's report, history.jsonl and history.html are kept")

// TestCatalogue runs every scenario of the catalogue, each variant in a fresh
// sandbox, and asserts its `expect` block: safe scenarios must check
// linearizable, negative controls must be caught. A failing run keeps its
// artifacts (report.json, history.jsonl, porcupine's history.html).
func TestCatalogue(t *testing.T) {
	if testing.Short() {
		t.Skip("the catalogue takes minutes; skipped with -short")
	}
	all, err := scenarios.LoadAll()
	require.NoError(t, err)
	for _, sc := range all {
		t.Run(sc.Name, func(t *testing.T) {
			runAndExpect(t, sc, 0)
		})
	}
}

func runAndExpect(t *testing.T, sc *scenarios.Scenario, seed int64) *Report {
	t.Helper()
	out := t.TempDir()
	var progress strings.Builder
	ctx, cancel := context.WithTimeout(t.Context(), sc.Duration*time.Duration(len(sc.VariantNames()))+3*time.Minute)
	defer cancel()
	rep, err := Scenario(ctx, sc, Options{Seed: seed, OutDir: out, Progress: &progress})
	require.NoError(t, err, "progress:\n%s", progress.String())
	for _, v := range rep.Variants {
		t.Logf("%s/%s: lock=%s resource=%s acquires ok/fail/unknown=%d/%d/%d resolved=%d stale=%d overlap=%v check=%v",
			sc.Name, v.Variant, v.Lock, v.Resource, v.Check.Counts.Acquire.OK, v.Check.Counts.Acquire.Fail,
			v.Check.Counts.Acquire.Unknown, v.Resolved, v.Check.Counts.Stale, v.Check.Overlap.Max, v.Check.Elapsed)
	}
	for _, v := range rep.Variants {
		checkExplanations(t, sc, v)
	}
	if !rep.Pass || t.Failed() {
		keep := filepath.Join(*artifacts, fmt.Sprintf("%s-seed%d", sc.Name, rep.Seed))
		_ = os.RemoveAll(keep)
		if err := os.CopyFS(keep, os.DirFS(out)); err == nil {
			t.Logf("artifacts kept in %s", keep)
		}
		for _, v := range rep.Variants {
			for _, f := range v.Failures {
				t.Errorf("%s/%s: %s", sc.Name, v.Variant, f)
			}
		}
		t.Logf("progress:\n%s", progress.String())
	}
	return rep
}

var (
	seeds     = flag.Int("seeds", 0, "run the negative-control scenarios on this many seeds; 0 skips (make controls uses 20)")
	safeSeeds = flag.Int("safe-seeds", 3, "with -seeds, run every other catalogue scenario on this many seeds")
)

// TestNegativeControlRate runs each negative control on many seeds and
// reports how often the checker caught it (the goal: at least 19 of 20),
// and runs every safe scenario on the same seeds to show that none is ever
// reported violated. Opt-in: `go test ./run -run NegativeControlRate -seeds 20`.
func TestNegativeControlRate(t *testing.T) {
	if *seeds == 0 {
		t.Skip("opt-in: -seeds N")
	}
	all, err := scenarios.LoadAll()
	require.NoError(t, err)
	type tally struct{ runs, caught, falseAlarms int }
	rates := map[string]*tally{}
	for _, sc := range all {
		n := *safeSeeds
		for _, e := range sc.Expect {
			if e.Lock == scenarios.Violated || e.Resource == scenarios.Violated {
				n = *seeds
			}
		}
		for seed := int64(1); seed <= int64(n); seed++ {
			rep := runQuiet(t, sc, seed)
			for _, v := range rep.Variants {
				checkExplanations(t, sc, v)
				key := sc.Name + "/" + v.Variant
				if rates[key] == nil {
					rates[key] = &tally{}
				}
				tl := rates[key]
				tl.runs++
				negative := v.Expect["lock"] == scenarios.Violated || v.Expect["resource"] == scenarios.Violated
				if negative && v.Pass {
					tl.caught++
				}
				if !negative && (v.Lock == "violated" || v.Resource == "violated") {
					tl.falseAlarms++
				}
			}
		}
	}
	for key, tl := range rates {
		t.Logf("%-45s runs=%d caught=%d falseAlarms=%d", key, tl.runs, tl.caught, tl.falseAlarms)
		require.Zero(t, tl.falseAlarms, "%s: a safe variant was reported violated", key)
	}
	for key, tl := range rates {
		if tl.caught > 0 || strings.Contains(key, "unfenced") || strings.Contains(key, "check-then-set") {
			require.GreaterOrEqual(t, tl.caught*20, tl.runs*19, "%s: caught %d of %d", key, tl.caught, tl.runs)
		}
	}
}

// checkExplanations asserts what a caught negative control must explain:
// for each model expected violated and found so, an explanation of at most
// 4 operations, of the right kind, that names a fault the scenario planted
// (a step's fault, or the deliberately broken lock servers).
func checkExplanations(t *testing.T, sc *scenarios.Scenario, v VariantReport) {
	t.Helper()
	planted := map[string]bool{}
	if v.Unsafe != "" {
		planted["unsafe"] = true
	}
	for _, st := range sc.Steps {
		planted[st.Fault] = true
	}
	kinds := map[string][]history.Kind{
		history.ModelLock:     {history.KindDoubleGrant},
		history.ModelResource: {history.KindStaleWrite, history.KindLostUpdate},
	}
	for model, want := range map[string]string{history.ModelLock: v.Expect["lock"], history.ModelResource: v.Expect["resource"]} {
		got := v.Lock
		if model == history.ModelResource {
			got = v.Resource
		}
		if want != scenarios.Violated || got != history.Violated {
			continue
		}
		i := slices.IndexFunc(v.Check.Explanations, func(e history.Explanation) bool { return e.Model == model })
		if !assert.GreaterOrEqual(t, i, 0, "%s/%s: no explanation of the %s violation", sc.Name, v.Variant, model) {
			continue
		}
		e := v.Check.Explanations[i]
		assert.LessOrEqual(t, len(e.Operations), 4, "%s/%s: %s", sc.Name, v.Variant, e.Text)
		assert.Contains(t, kinds[model], e.Kind, "%s/%s: %s", sc.Name, v.Variant, e.Text)
		named := slices.ContainsFunc(e.Faults, func(id int) bool {
			return slices.ContainsFunc(v.Faults, func(ev faults.Event) bool { return ev.ID == id && planted[ev.Fault] })
		})
		assert.True(t, named, "%s/%s: the explanation names none of the planted faults %v: faults %v, %s", sc.Name, v.Variant, planted, e.Faults, e.Text)
	}
}

func runQuiet(t *testing.T, sc *scenarios.Scenario, seed int64) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), sc.Duration*time.Duration(len(sc.VariantNames()))+3*time.Minute)
	defer cancel()
	rep, err := Scenario(ctx, sc, Options{Seed: seed})
	require.NoError(t, err)
	return rep
}
