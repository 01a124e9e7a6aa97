package faults

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stall is how long a blocked operation must stay blocked for the tests to call it stalled.
const stall = 150 * time.Millisecond

// echoServer listens on loopback and echoes every connection until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(c, c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// dial connects "client" to the echo server named "server".
func dial(t *testing.T, n *Network) net.Conn {
	t.Helper()
	addr := echoServer(t)
	n.Name(addr, "server")
	c, err := n.Dialer("client")(t.Context(), "tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	buf := make([]byte, n)
	_, err := io.ReadFull(c, buf)
	require.NoError(t, err)
	return string(buf)
}

// async runs f and returns a channel closed when it is done.
func async(f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	return done
}

func requireStalled(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
		t.Fatalf("%s went through a blocked link", what)
	case <-time.After(stall):
	}
}

func requireDone(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s still stalled", what)
	}
}

func TestNetworkBlockedWriteStallsAndHealDeliversTheSameBytes(t *testing.T) {
	n := NewNetwork(nil)
	c := dial(t, n)
	_, err := c.Write([]byte("hello"))
	require.NoError(t, err)
	assert.Equal(t, "hello", readN(t, c, 5))

	n.Block("client", "server")
	var werr error
	done := async(func() { _, werr = c.Write([]byte("after the heal")) })
	requireStalled(t, done, "write")
	assert.Equal(t, []LinkState{{From: "client", To: "server", Blocked: true}}, n.Links())

	n.Heal()
	requireDone(t, done, "write")
	require.NoError(t, werr)
	assert.Equal(t, "after the heal", readN(t, c, 14))
	assert.Empty(t, n.Links())
}

func TestNetworkBlockedReadDirectionHoldsBytes(t *testing.T) {
	n := NewNetwork(nil)
	c := dial(t, n)
	n.Block("server", "client")
	_, err := c.Write([]byte("ping")) // client -> server is open
	require.NoError(t, err)

	// A read deadline passing while the bytes are held must not lose them.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	_, err = c.Read(make([]byte, 4))
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	require.NoError(t, c.SetReadDeadline(time.Time{}))

	var got string
	done := async(func() { got = readN(t, c, 4) })
	requireStalled(t, done, "read")
	n.Unblock("server", "client")
	requireDone(t, done, "read")
	assert.Equal(t, "ping", got)
}

func TestNetworkBlockedDialHangsUntilCtxDeadline(t *testing.T) {
	n := NewNetwork(nil)
	addr := echoServer(t)
	n.Name(addr, "server")
	n.Block("client", "server")

	ctx, cancel := context.WithTimeout(t.Context(), stall)
	defer cancel()
	start := time.Now()
	_, err := n.Dialer("client")(ctx, "tcp", addr)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.GreaterOrEqual(t, time.Since(start), stall, "a black hole, not a refusal")

	// Another component is unaffected, and an unblock lets a hanging dial through.
	c, err := n.Dialer("other")(t.Context(), "tcp", addr)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	var dialErr error
	done := async(func() {
		c, dialErr = n.Dialer("client")(t.Context(), "tcp", addr)
	})
	requireStalled(t, done, "dial")
	n.Unblock("client", "server")
	requireDone(t, done, "dial")
	require.NoError(t, dialErr)
	require.NoError(t, c.Close())
}

func TestNetworkDelayAddsLatencyAndKeepsOrder(t *testing.T) {
	const latency = 100 * time.Millisecond
	n := NewNetwork(nil)
	c := dial(t, n)

	n.SetDelay("client", "server", latency, 0)
	start := time.Now()
	_, err := c.Write([]byte("a"))
	require.NoError(t, err)
	readN(t, c, 1)
	assert.GreaterOrEqual(t, time.Since(start), latency)

	n.SetDelay("server", "client", latency, 0)
	start = time.Now()
	_, err = c.Write([]byte("b"))
	require.NoError(t, err)
	readN(t, c, 1)
	assert.GreaterOrEqual(t, time.Since(start), 2*latency, "both directions delayed")

	n.SetDelay("client", "server", 5*time.Millisecond, 5*time.Millisecond)
	n.SetDelay("server", "client", 0, 0)
	var want strings.Builder
	for i := range 20 {
		msg := string(rune('a' + i))
		want.WriteString(msg)
		_, err := c.Write([]byte(msg))
		require.NoError(t, err)
	}
	assert.Equal(t, want.String(), readN(t, c, 20), "order preserved under jitter")
	assert.Equal(t, []LinkState{{From: "client", To: "server", Latency: 5 * time.Millisecond, Jitter: 5 * time.Millisecond}}, n.Links())
}

func TestNetworkCloseAndDeadlineEndABlockedWrite(t *testing.T) {
	n := NewNetwork(nil)
	c := dial(t, n)
	n.Block("client", "server")

	require.NoError(t, c.SetWriteDeadline(time.Now().Add(50*time.Millisecond)))
	_, err := c.Write([]byte("x"))
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout(), "write deadline honoured")

	require.NoError(t, c.SetWriteDeadline(time.Time{}))
	var werr error
	done := async(func() { _, werr = c.Write([]byte("y")) })
	requireStalled(t, done, "write")
	require.NoError(t, c.Close())
	requireDone(t, done, "write")
	assert.ErrorIs(t, werr, net.ErrClosed)
}

func TestNetworkHTTPSurvivesAHeal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, _ = w.Write(append([]byte("echo:"), body...))
	}))
	t.Cleanup(srv.Close)
	n := NewNetwork(nil)
	n.Name(strings.TrimPrefix(srv.URL, "http://"), "lockserver-1")
	tr := &http.Transport{DialContext: n.Dialer("balancer"), MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	post := func(ctx context.Context, body string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(body))
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	got, err := post(t.Context(), "one")
	require.NoError(t, err)
	assert.Equal(t, "echo:one", got)

	// Both directions blocked on the kept-alive connection: the request hangs, then completes.
	n.Block("balancer", "lockserver-1")
	n.Block("lockserver-1", "balancer")
	var perr error
	done := async(func() { got, perr = post(t.Context(), "two") })
	requireStalled(t, done, "request")
	n.Heal()
	requireDone(t, done, "request")
	require.NoError(t, perr)
	assert.Equal(t, "echo:two", got)

	n.Block("balancer", "lockserver-1")
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = post(ctx, "three")
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "got %v", err)
	n.Heal()
	got, err = post(t.Context(), "four")
	require.NoError(t, err)
	assert.Equal(t, "echo:four", got)
}
