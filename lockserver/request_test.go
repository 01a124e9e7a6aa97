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
