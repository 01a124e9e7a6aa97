package loadbalancer

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// named is an HTTP server that answers every request with its name.
func named(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func startVIP(t *testing.T, cfg VirtualConfig) *VirtualAddress {
	t.Helper()
	v := NewVirtualAddress(cfg)
	require.NoError(t, v.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, v.Close()) })
	return v
}

func get(t *testing.T, hc *http.Client, url string) (string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestVirtualAddressFollowsTheLatestClaim(t *testing.T) {
	a, b := named(t, "a"), named(t, "b")
	var moves [][2]string
	v := startVIP(t, VirtualConfig{OnMove: func(from, to string) { moves = append(moves, [2]string{from, to}) }})
	name, _ := v.Owner()
	assert.Empty(t, name)

	v.Claim("a", a)
	v.Claim("a", a) // claiming what it owns changes nothing
	name, addr := v.Owner()
	assert.Equal(t, "a", name)
	assert.Equal(t, a, addr)
	v.Claim("b", b)
	v.Release("a") // not the owner: nothing
	name, _ = v.Owner()
	assert.Equal(t, "b", name)
	v.Release("b")
	name, _ = v.Owner()
	assert.Empty(t, name)
	assert.Equal(t, uint64(3), v.Moves())
	assert.Equal(t, [][2]string{{"", "a"}, {"a", "b"}, {"b", ""}}, moves)
}

func TestVirtualAddressDialerRoutesToTheOwnerAndResetsOnMove(t *testing.T) {
	a, b := named(t, "a"), named(t, "b")
	v := startVIP(t, VirtualConfig{})
	tr := &http.Transport{DialContext: v.Dialer((&net.Dialer{}).DialContext)}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}

	_, err := get(t, hc, v.URL())
	require.Error(t, err, "no owner")
	assert.ErrorIs(t, err, ErrNoOwner)
	var op *net.OpError
	require.ErrorAs(t, err, &op)
	assert.Equal(t, "dial", op.Op, "nothing was sent")

	v.Claim("a", a)
	got, err := get(t, hc, v.URL())
	require.NoError(t, err)
	assert.Equal(t, "a", got)

	// A connection made while a owns the address is reset when it moves.
	c, err := v.Dialer((&net.Dialer{}).DialContext)(t.Context(), "tcp", v.Addr())
	require.NoError(t, err)
	defer c.Close()
	v.Claim("b", b)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, net.ErrClosed, "the old owner's connection is gone")

	got, err = get(t, hc, v.URL())
	require.NoError(t, err)
	assert.Equal(t, "b", got, "new connections go to the new owner")
}

func TestVirtualAddressListenerJoinsTheOwner(t *testing.T) {
	a, b := named(t, "a"), named(t, "b")
	v := startVIP(t, VirtualConfig{})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}

	_, err := get(t, hc, v.URL())
	require.Error(t, err, "accepted, then closed: nobody owns the address")

	v.Claim("a", a)
	got, err := get(t, hc, v.URL())
	require.NoError(t, err)
	assert.Equal(t, "a", got)
	v.Claim("b", b)
	require.Eventually(t, func() bool {
		got, err := get(t, hc, v.URL())
		return err == nil && got == "b"
	}, 10*time.Second, 5*time.Millisecond)

	// An owner that refuses connections: the client's connection is closed.
	v.Claim("dead", deadURL(t)[len("http://"):])
	_, err = get(t, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, v.URL())
	require.Error(t, err)
}

func TestVirtualAddressCloseIsIdempotent(t *testing.T) {
	a := named(t, "a")
	v := NewVirtualAddress(VirtualConfig{})
	require.NoError(t, v.Start(t.Context()))
	assert.ErrorIs(t, v.Start(t.Context()), ErrStarted)
	v.Claim("a", a)
	c, err := net.Dial("tcp", v.Addr())
	require.NoError(t, err)
	defer c.Close()
	// The spliced connection works before Close.
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	buf := make([]byte, 12)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	assert.Equal(t, "HTTP/1.1 200", string(buf))

	require.NoError(t, v.Close())
	require.NoError(t, v.Close())
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(c)
	var ne net.Error
	assert.False(t, errors.As(err, &ne) && ne.Timeout(), "closed, not hanging")
	assert.ErrorIs(t, v.Start(context.Background()), ErrClosed)
	v.Claim("a", a) // after Close: ignored
	name, _ := v.Owner()
	assert.Equal(t, "a", name, "the owner at Close")
}
