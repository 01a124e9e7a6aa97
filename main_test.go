package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb syncBuffer
	m := &Main{Stdout: &out, Stderr: &errb}
	code = m.Run(t.Context(), args)
	return code, out.String(), errb.String()
}

// TestCheckExitCodes: 0 linearizable, 1 violated, 2 bad input.
func TestCheckExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
		says string
	}{
		{"valid history", []string{"check", "history/testdata/valid.jsonl"}, exitOK, "linearizable"},
		{"two overlapping grants", []string{"check", "history/testdata/overlap.jsonl"}, exitFailed, "violated"},
		{"unfenced lost update", []string{"check", "history/testdata/unfenced.jsonl"}, exitFailed, "violated"},
		{"truncated line", []string{"check", "testdata/truncated.jsonl"}, exitBadInput, "line 1"},
		{"missing file", []string{"check", "testdata/nope.jsonl"}, exitBadInput, "no such file"},
		{"no file", []string{"check"}, exitBadInput, "exactly one history file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, tt.args...)
			assert.Equal(t, tt.want, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			assert.Contains(t, stdout+stderr, tt.says)
		})
	}
}

// TestCheckExplains: under the verdict, check says why, with the few
// operations that show it.
func TestCheckExplains(t *testing.T) {
	tests := []struct {
		file string
		says []string
	}{
		{"history/testdata/overlap.jsonl", []string{
			"why lock order:1: double-grant, 2 operations",
			"Double grant on order:1, caught by the lock model:",
			"client-a acquire order:1 → #1 (0.000–0.010 s, ok)",
			"client-b acquire order:1 → #2 (0.100–0.110 s, ok)",
		}},
		{"history/testdata/unfenced.jsonl", []string{
			"why resource order:1: stale-write-accepted, 4 operations",
			"client-a write order:1 1 with #1 (1.200–1.210 s, ok)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			code, stdout, _ := runMain(t, "check", tt.file)
			assert.Equal(t, exitFailed, code)
			for _, want := range tt.says {
				assert.Contains(t, stdout, want)
			}
		})
	}
	_, stdout, _ := runMain(t, "check", "history/testdata/valid.jsonl")
	assert.NotContains(t, stdout, "why", "nothing to explain")
}

func TestCheckWritesHTML(t *testing.T) {
	html := filepath.Join(t.TempDir(), "h.html")
	code, _, _ := runMain(t, "check", "--html", html, "history/testdata/overlap.jsonl")
	assert.Equal(t, exitFailed, code)
	b, err := os.ReadFile(html)
	require.NoError(t, err)
	assert.Contains(t, string(b), "<html")
	b, err = os.ReadFile(strings.TrimSuffix(html, ".html") + ".explain-1.html")
	require.NoError(t, err, "the view of the explanation is written next to the full one")
	assert.Contains(t, string(b), "<html")
}

// TestRunExitCodes: a malformed file is file:line and exit 2 with nothing
// started; a run whose expectations hold exits 0 and writes its artifacts;
// a run whose expectation fails exits 1.
func TestRunExitCodes(t *testing.T) {
	t.Run("malformed file", func(t *testing.T) {
		code, stdout, stderr := runMain(t, "run", "--out", t.TempDir(), "testdata/short-safe.yaml", "testdata/bad-fault.yaml")
		assert.Equal(t, exitBadInput, code)
		assert.Contains(t, stderr, "bad-fault.yaml:5:")
		assert.Contains(t, stderr, `"pasue"`)
		assert.Empty(t, stdout, "nothing ran: not even the valid file")
	})
	t.Run("expectations hold", func(t *testing.T) {
		out := t.TempDir()
		code, stdout, stderr := runMain(t, "run", "--out", out, "testdata/short-safe.yaml")
		require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		assert.Contains(t, stdout, "PASS")
		for _, f := range []string{"report.json", "default/report.json", "default/history.jsonl", "default/history.html"} {
			assert.FileExists(t, filepath.Join(out, "short-safe", f))
		}
		code, checkOut, _ := runMain(t, "check", filepath.Join(out, "short-safe", "default", "history.jsonl"))
		assert.Equal(t, exitOK, code, "the recorded history checks offline too: %s", checkOut)
	})
	t.Run("expectation fails", func(t *testing.T) {
		code, stdout, stderr := runMain(t, "run", "--out", t.TempDir(), "testdata/short-wrong-expectation.yaml")
		assert.Equal(t, exitFailed, code, "stderr:\n%s", stderr)
		assert.Contains(t, stdout, "FAIL")
		assert.True(t, strings.Contains(stdout, "lock: expected violated, got linearizable"), stdout)
	})
}

func TestUnknownCommand(t *testing.T) {
	code, _, stderr := runMain(t, "frobnicate")
	assert.Equal(t, exitBadInput, code)
	assert.Contains(t, stderr, `unknown command "frobnicate"`)
}
