package lockserver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
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

func TestTokenRoundTrip(t *testing.T) {
	tok, err := newToken(clientv3.LeaseID(0x1234abcd))
	require.NoError(t, err)
	id, ok := parseToken(tok)
	require.True(t, ok)
	assert.Equal(t, clientv3.LeaseID(0x1234abcd), id)
	tok2, err := newToken(clientv3.LeaseID(0x1234abcd))
	require.NoError(t, err)
	assert.NotEqual(t, tok, tok2)
	for _, bad := range []string{"", "abc", "zz." + stringOf('a', 40), "12." + stringOf('g', 40), "12." + stringOf('a', 39), "-5." + stringOf('a', 40)} {
		_, ok := parseToken(bad)
		assert.False(t, ok, bad)
	}
	assert.Len(t, hashToken(tok), 64)
}
