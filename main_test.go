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

func TestCheckWritesHTML(t *testing.T) {
	html := filepath.Join(t.TempDir(), "h.html")
	code, _, _ := runMain(t, "check", "--html", html, "history/testdata/overlap.jsonl")
	assert.Equal(t, exitFailed, code)
	b, err := os.ReadFile(html)
	require.NoError(t, err)
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
