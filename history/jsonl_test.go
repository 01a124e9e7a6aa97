package history

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJSONLRoundTrip(t *testing.T) {
	want := append(gcPause(true), acquireUnknown("client-c", r1, 5000, 2))
	want = append(want, Generate(GenConfig{Seed: 1, Ops: 200, Unknown: 0.1})...)
	var buf bytes.Buffer
	require.NoError(t, WriteJSONL(&buf, want))
	assert.Equal(t, len(want), strings.Count(buf.String(), "\n"))
	assert.NotContains(t, buf.String(), `"return"`+":null", "unknown outcomes omit return")
	got, err := ReadJSONL(&buf)
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestReadJSONLStrict(t *testing.T) {
	good := `{"client":"c","op":"acquire","resource":"r","input":{},"output":{},"call":1,"return":2,"outcome":"ok"}`
	tests := []struct {
		name string
		line string
		want string
	}{
		{"unknown field", `{"client":"c","op":"acquire","resource":"r","input":{},"output":{},"call":1,"return":2,"outcome":"ok","x":1}`, `unknown field "x"`},
		{"unknown nested field", `{"client":"c","op":"acquire","resource":"r","input":{"tll":1},"output":{},"call":1,"return":2,"outcome":"ok"}`, `unknown field "tll"`},
		{"bad outcome", `{"client":"c","op":"acquire","resource":"r","input":{},"output":{},"call":1,"return":2,"outcome":"maybe"}`, `bad outcome "maybe"`},
		{"return before call", `{"client":"c","op":"acquire","resource":"r","input":{},"output":{},"call":5,"return":2,"outcome":"ok"}`, "return 2 before call 5"},
		{"missing return", `{"client":"c","op":"release","resource":"r","input":{},"output":{},"call":1,"outcome":"fail"}`, `missing return for outcome "fail"`},
		{"return for unknown", `{"client":"c","op":"release","resource":"r","input":{},"output":{},"call":1,"return":2,"outcome":"unknown"}`, "return present for an unknown outcome"},
		{"unknown op", `{"client":"c","op":"lock","resource":"r","input":{},"output":{},"call":1,"return":2,"outcome":"ok"}`, `unknown op "lock"`},
		{"missing client", `{"op":"read","resource":"r","input":{},"output":{},"call":1,"return":2,"outcome":"ok"}`, "missing client"},
		{"wrong type", `{"client":"c","op":"read","resource":"r","input":{},"output":{},"call":"1","return":2,"outcome":"ok"}`, "cannot unmarshal"},
		{"trailing data", good + ` {}`, "trailing data"},
		{"not json", `hello`, "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The bad line is line 4: blank lines count.
			in := good + "\n\n" + good + "\n" + tt.line + "\n" + good + "\n"
			_, err := ReadJSONL(strings.NewReader(in))
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrInvalid))
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, 4, pe.Line)
			assert.True(t, strings.HasPrefix(err.Error(), "line 4: "), err.Error())
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	ops, err := ReadJSONL(strings.NewReader(good + "\n\n" + good))
	require.NoError(t, err)
	assert.Len(t, ops, 2)
}
