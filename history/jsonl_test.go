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

func TestOpString(t *testing.T) {
	for _, tt := range []struct {
		op   Op
		want string
	}{
		{acquireOK("client-1", r1, "t", 7, 100, 120, 1), "client-1 acquire order:1 → #7 (0.100–0.120 s, ok)"},
		{acquireFail("client-1", r1, 100, 1100), "client-1 acquire order:1 (0.100–1.100 s, fail)"},
		{read("client-2", r1, 7, 200, 210, 56), "client-2 read order:1 → 56 with #7 (0.200–0.210 s, ok)"},
		{write("client-2", r1, 7, 5000, 5002, 57, OK), "client-2 write order:1 57 with #7 (5.000–5.002 s, ok)"},
		{write("client-2", r1, 7, 5000, 0, 57, Unknown), "client-2 write order:1 57 with #7 (from 5.000 s, unknown)"},
		{writeRejected("client-2", r1, 7, 5000, 5002, 57), "client-2 write order:1 57 with #7 (5.000–5.002 s, fail rejected)"},
		{release("client-1", r1, "t", 300, 310, Fail, "not_held"), "client-1 release order:1 (0.300–0.310 s, fail not_held)"},
	} {
		assert.Equal(t, tt.want, tt.op.String())
	}
}
