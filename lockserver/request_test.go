package lockserver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidResourceID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"order:12345", true},
		{"a/b/c.d_e-f", true},
		{string(make([]byte, 0)), false},
		{"a#b", false},
		{"é", false},
		{"a b", false},
		{stringOf('a', 256), true},
		{stringOf('a', 257), false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			assert.Equal(t, tt.want, validResourceID(tt.id))
		})
	}
}

func stringOf(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func TestParseAcquireDefaults(t *testing.T) {
	lim := limits{MaxTTL: time.Hour, MaxTimeout: 5 * time.Minute}
	got, err := parseAcquire([]byte(`{"resourceId":"r","ttl":0.5}`), lim)
	require.NoError(t, err)
	assert.Equal(t, acquireRequest{ResourceID: "r", TTL: 500 * time.Millisecond}, got)
	got, err = parseAcquire([]byte(`{"resourceId":"r","ttl":3600,"timeout":300,"clientId":"c"}`), lim)
	require.NoError(t, err)
	assert.Equal(t, acquireRequest{ResourceID: "r", TTL: time.Hour, Timeout: 5 * time.Minute, ClientID: "c"}, got)
}

func TestTokenForm(t *testing.T) {
	tok, err := newToken()
	require.NoError(t, err)
	assert.Len(t, tok, 40, "160 random bits in hex")
	assert.True(t, validToken(tok))
	tok2, err := newToken()
	require.NoError(t, err)
	assert.NotEqual(t, tok, tok2)
	for _, bad := range []string{"", "abc", stringOf('g', 40), stringOf('a', 39), stringOf('a', 41), "12." + stringOf('a', 40)} {
		assert.False(t, validToken(bad), bad)
	}
	assert.Len(t, hashToken(tok), 64)
}

// FuzzFastDecodeAgrees: whenever the fast path decodes a body, encoding/json
// (the strict decoder) accepts it too and decodes the same fields, for every
// kind of body. So the fast path changes no answer, only its cost.
func FuzzFastDecodeAgrees(f *testing.F) {
	for _, s := range []string{
		`{"resourceId":"order:12345","ttl":30,"timeout":10,"clientId":"client-A"}`,
		`{"resourceId":"r","lockToken":"00ab","ttl":1.5e3}`,
		` { "resourceId" : "x" , "ttl" : -0.0 } `,
		`{"resourceId":"x","ttl":1,"ttl":2}`,
		`{"ResourceId":"x","ttl":1}`,
		`{"resourceId":"x","ttl":1e999}`,
		`{"resourceId":"\u0041","ttl":01}`,
		`{"resourceId":"é","clientId":true}`,
		`{}`, `{"resourceId":null}`,
	} {
		f.Add([]byte(s))
	}
	sets := [][]string{
		{fResourceID, fTTL, fTimeout, fClientID},
		{fResourceID, fLockToken},
		{fResourceID, fLockToken, fTTL},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, allowed := range sets {
			fast, ok := decodeFast(body, allowed)
			if !ok {
				continue
			}
			slow, err := decodeSlow(body, allowed)
			if err != nil {
				t.Fatalf("fast path accepted %q (fields %v), encoding/json rejects it: %v", body, allowed, err)
			}
			if fast != slow && !(fast.ttl.v != fast.ttl.v && slow.ttl.v != slow.ttl.v) {
				t.Fatalf("%q (fields %v): fast path %+v, encoding/json %+v", body, allowed, fast, slow)
			}
		}
	})
}

func TestFastDecodeTakesPlainBodies(t *testing.T) {
	tests := []struct {
		body string
		fast bool
	}{
		{`{"resourceId":"order:12345","ttl":30,"timeout":0,"clientId":"client-A"}`, true},
		{"\n{ \"resourceId\" : \"r\" , \"ttl\" : 0.5 }\n", true},
		{`{"resourceId":"r\u0041","ttl":1}`, false},   // an escape
		{`{"resourceId":"r","ttl":1,"ttl":2}`, false}, // a repeated key
		{`{"resourceid":"r","ttl":1}`, false},         // matched case-insensitively by encoding/json
		{`{"resourceId":"r","ttl":"1"}`, false},       // a type error, reported by encoding/json
		{`{"resourceId":"r","ttl":1e400}`, false},     // out of range
		{`{"resourceId":"r","ttl":01}`, false},        // not JSON
		{`{"resourceId":"r","ttl":1} x`, false},
	}
	for _, tt := range tests {
		_, got := decodeFast([]byte(tt.body), []string{fResourceID, fTTL, fTimeout, fClientID})
		assert.Equal(t, tt.fast, got, "%q", tt.body)
	}
}
