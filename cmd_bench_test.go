package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/bench"
)

// TestBenchQuickEndToEnd runs `locksim bench --quick` in-process: every
// suite on a real cluster, the table on stdout and the rows in --json.
func TestBenchQuickEndToEnd(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	m := &Main{Stdout: &stdout, Stderr: &stderr}
	code := m.Run(t.Context(), []string{"bench", "--quick", "--json", out})
	require.Equal(t, exitOK, code, "stderr:\n%s", stderr.String())

	b, err := os.ReadFile(out)
	require.NoError(t, err)
	var rows []bench.Row
	require.NoError(t, json.Unmarshal(b, &rows))
	// The JSON rows carry the contract's fields.
	var raw []map[string]any
	require.NoError(t, json.Unmarshal(b, &raw))
	require.NotEmpty(t, raw)
	for _, k := range []string{"name", "concurrency", "keys", "cyclesPerSec", "p50Ms", "p95Ms", "p99Ms"} {
		assert.Contains(t, raw[0], k)
	}

	byName := map[string][]bench.Row{}
	for _, r := range rows {
		byName[r.Name] = append(byName[r.Name], r)
	}
	paths := []string{bench.Raw, bench.Direct, bench.Balancer, bench.BalancerTCP, bench.Mutex}
	if _, err := exec.LookPath("haproxy"); err == nil {
		paths = append(paths, bench.HAProxy, bench.HAProxyTCP)
	} else {
		assert.Contains(t, stdout.String(), "haproxy skipped")
	}
	for _, name := range paths {
		got := byName[name]
		require.NotEmpty(t, got, "no %s rows", name)
		for _, r := range got {
			assert.Positive(t, r.CyclesPerSec, "%s c=%d keys=%s", name, r.Concurrency, r.Keys)
			assert.Positive(t, r.P50Ms, "%s c=%d keys=%s", name, r.Concurrency, r.Keys)
			assert.LessOrEqual(t, r.P50Ms, r.P99Ms)
			assert.Zero(t, r.Errors, "%s c=%d keys=%s", name, r.Concurrency, r.Keys)
			assert.Positive(t, r.WritesPerCycle, "%s: commit index must move", name)
		}
	}
	for _, r := range byName[bench.Balancer] {
		// Counted from the lock servers (a quick point may hold a single
		// cycle, so only presence is checked, not the ratio).
		assert.Positive(t, r.GrantTxnsPerCycle, "%+v", r)
	}
	require.Len(t, byName["failover-fast"], 1)
	assert.Positive(t, byName["failover-fast"][0].P50Ms)
	require.Len(t, byName["balancer-failover-fast"], 1, "a balancer pair's failover row")
	assert.Positive(t, byName["balancer-failover-fast"][0].P50Ms)
	assert.Contains(t, byName["balancer-failover-fast"][0].Note, "through the virtual address")
	require.NotEmpty(t, byName["scale"])
	last := byName["scale"][len(byName["scale"])-1]
	assert.Positive(t, last.Held)
	// DBBytesPerLock is a measurement, not asserted: in a quick run with
	// few locks, etcd's pages in use can even shrink (freed pages reused).
	require.NotEmpty(t, byName["checker"])
	assert.Contains(t, byName["checker"][0].Note, "lock linearizable")
	assert.Contains(t, stdout.String(), "cycles/s")
}

func TestBenchBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--only", "nginx"},
		{"bench", "--concurrency", "1,x"},
		{"bench", "--duration", "-1s"},
		{"bench", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		m := &Main{Stdout: &stdout, Stderr: &stderr}
		assert.Equal(t, exitBadInput, m.Run(t.Context(), args), "%v", args)
		assert.NotEmpty(t, stderr.String())
	}
}
