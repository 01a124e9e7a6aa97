package lockserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestValidation: each bad request gets its status and stable code, and etcd
// is unchanged (same revision).
func TestValidation(t *testing.T) {
	te := startEtcd(t)
	s, c := startServer(t, te, nil)
	held, err := c.Acquire(t.Context(), "held", 30*time.Second, 0)
	require.NoError(t, err)
	_ = held

	big := `{"resourceId":"r","ttl":1,"clientId":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		chunked     bool
		wantStatus  int
		wantCode    string
		wantAllow   string
	}{
		{name: "malformed json", path: "/locks/acquire", body: `{"resourceId":`, wantStatus: 400, wantCode: CodeMalformedJSON},
		{name: "empty body", path: "/locks/acquire", body: ``, wantStatus: 400, wantCode: CodeMalformedJSON},
		{name: "trailing data", path: "/locks/acquire", body: `{"resourceId":"r","ttl":1} {}`, wantStatus: 400, wantCode: CodeMalformedJSON},
		{name: "unknown field", path: "/locks/acquire", body: `{"resourceId":"r","ttl":1,"owner":"x"}`, wantStatus: 400, wantCode: CodeUnknownField},
		{name: "ttl as string", path: "/locks/acquire", body: `{"resourceId":"r","ttl":"30"}`, wantStatus: 400, wantCode: CodeInvalidType},
		{name: "resourceId as number", path: "/locks/acquire", body: `{"resourceId":7,"ttl":1}`, wantStatus: 400, wantCode: CodeInvalidType},
		{name: "not an object", path: "/locks/acquire", body: `[1]`, wantStatus: 400, wantCode: CodeInvalidType},
		{name: "missing resourceId", path: "/locks/acquire", body: `{"ttl":1}`, wantStatus: 400, wantCode: CodeMissingField},
		{name: "missing ttl", path: "/locks/acquire", body: `{"resourceId":"r"}`, wantStatus: 400, wantCode: CodeMissingField},
		{name: "empty resourceId", path: "/locks/acquire", body: `{"resourceId":"","ttl":1}`, wantStatus: 400, wantCode: CodeInvalidResourceID},
		{name: "resourceId with #", path: "/locks/acquire", body: `{"resourceId":"a#b","ttl":1}`, wantStatus: 400, wantCode: CodeInvalidResourceID},
		{name: "resourceId with space", path: "/locks/acquire", body: `{"resourceId":"a b","ttl":1}`, wantStatus: 400, wantCode: CodeInvalidResourceID},
		{name: "resourceId 257 bytes", path: "/locks/acquire", body: `{"resourceId":"` + strings.Repeat("a", 257) + `","ttl":1}`, wantStatus: 400, wantCode: CodeInvalidResourceID},
		{name: "ttl 0", path: "/locks/acquire", body: `{"resourceId":"r","ttl":0}`, wantStatus: 400, wantCode: CodeInvalidTTL},
		{name: "ttl negative", path: "/locks/acquire", body: `{"resourceId":"r","ttl":-1}`, wantStatus: 400, wantCode: CodeInvalidTTL},
		{name: "ttl 3601", path: "/locks/acquire", body: `{"resourceId":"r","ttl":3601}`, wantStatus: 400, wantCode: CodeInvalidTTL},
		{name: "timeout negative", path: "/locks/acquire", body: `{"resourceId":"r","ttl":1,"timeout":-0.5}`, wantStatus: 400, wantCode: CodeInvalidTimeout},
		{name: "timeout 301", path: "/locks/acquire", body: `{"resourceId":"r","ttl":1,"timeout":301}`, wantStatus: 400, wantCode: CodeInvalidTimeout},
		{name: "body over 64 KiB", path: "/locks/acquire", body: big, wantStatus: 413, wantCode: CodeBodyTooLarge},
		{name: "chunked body over 64 KiB", path: "/locks/acquire", body: big, chunked: true, wantStatus: 413, wantCode: CodeBodyTooLarge},
		{name: "text/plain", path: "/locks/acquire", contentType: "text/plain", body: `{"resourceId":"r","ttl":1}`, wantStatus: 415, wantCode: CodeUnsupportedMediaType},
		{name: "no content type", path: "/locks/acquire", contentType: "-", body: `{"resourceId":"r","ttl":1}`, wantStatus: 415, wantCode: CodeUnsupportedMediaType},
		{name: "PUT acquire", method: "PUT", path: "/locks/acquire", body: `{}`, wantStatus: 405, wantCode: CodeMethodNotAllowed, wantAllow: "GET, HEAD, POST"},
		{name: "DELETE lock", method: "DELETE", path: "/locks/held", wantStatus: 405, wantCode: CodeMethodNotAllowed, wantAllow: "GET, HEAD"},
		{name: "POST health", path: "/health", body: `{}`, wantStatus: 405, wantCode: CodeMethodNotAllowed, wantAllow: "GET, HEAD"},
		{name: "unknown path", method: "GET", path: "/nope", wantStatus: 404, wantCode: CodeNotFound},
		{name: "bad resourceId in GET", method: "GET", path: "/locks/a%20b", wantStatus: 400, wantCode: CodeInvalidResourceID},
		{name: "release missing token", path: "/locks/release", body: `{"resourceId":"held"}`, wantStatus: 400, wantCode: CodeMissingField},
		{name: "release foreign token", path: "/locks/release", body: `{"resourceId":"held","lockToken":"1.abc"}`, wantStatus: 409, wantCode: CodeNotHolder},
		{name: "renew bad ttl", path: "/locks/renew", body: `{"resourceId":"held","lockToken":"x","ttl":0}`, wantStatus: 400, wantCode: CodeInvalidTTL},
		{name: "acquire held", path: "/locks/acquire", contentType: "application/json; charset=utf-8", body: `{"resourceId":"held","ttl":1}`, wantStatus: 409, wantCode: CodeLockBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body)
			}
			req, err := http.NewRequestWithContext(t.Context(), method, s.URL()+tt.path, body)
			require.NoError(t, err)
			if tt.chunked {
				req.ContentLength = -1 // unknown length: Transfer-Encoding chunked
			}
			switch tt.contentType {
			case "":
				req.Header.Set("Content-Type", "application/json")
			case "-":
			default:
				req.Header.Set("Content-Type", tt.contentType)
			}
			before := te.revision(t)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var got errorBody
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
			assert.Equal(t, tt.wantStatus, resp.StatusCode)
			assert.Equal(t, tt.wantCode, got.Code)
			assert.False(t, got.Success)
			assert.NotEmpty(t, got.Error)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			if tt.wantAllow != "" {
				assert.Equal(t, tt.wantAllow, resp.Header.Get("Allow"))
			}
			assert.Equal(t, before, te.revision(t), "etcd unchanged")
		})
	}
}

func TestGetLockWithSlashesAndMetrics(t *testing.T) {
	te := startEtcd(t)
	s, c := startServer(t, te, nil)
	g, err := c.Acquire(t.Context(), "tenant/a/order:1", 5*time.Second, 0)
	require.NoError(t, err)
	info, err := c.Get(t.Context(), "tenant/a/order:1")
	require.NoError(t, err)
	assert.True(t, info.Held)
	assert.Equal(t, g.FencingToken, info.FencingToken)
	assert.WithinDuration(t, g.ExpiresAt, info.ExpiresAt, 1500*time.Millisecond)
	info, err = c.Get(t.Context(), "tenant/a")
	require.NoError(t, err)
	assert.Equal(t, LockInfo{ResourceID: "tenant/a"}, info, "a prefix of a held lock is not held")

	resp, err := http.Get(s.URL() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Contains(t, string(b), `lockserver_acquires_total{result="ok"} 1`)
}

func TestHealthUnavailableWhenEtcdStopped(t *testing.T) {
	te := startEtcd(t)
	s, c := startServer(t, te, func(cfg *Config) { cfg.EtcdTimeout = 500 * time.Millisecond })
	require.NoError(t, c.Health(t.Context()))
	te.stop()
	require.Eventually(t, func() bool { return errors.Is(c.Health(t.Context()), ErrUnavailable) }, 10*time.Second, 50*time.Millisecond)

	resp, err := http.Get(s.URL() + "/health")
	require.NoError(t, err)
	defer resp.Body.Close()
	var got map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.Equal(t, "unavailable", got["status"])
	assert.Equal(t, "ls-test", got["name"])

	_, err = c.Acquire(t.Context(), "r", time.Second, 0)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, http.StatusServiceUnavailable, e.Status)
	assert.Equal(t, CodeUnavailable, e.Code)
	assert.ErrorIs(t, err, ErrUnavailable)
}

// blackhole is a dialer whose connections silently drop writes once cut.
type blackhole struct {
	cut atomic.Bool
}

func (b *blackhole) dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &holeConn{Conn: c, b: b}, nil
}

type holeConn struct {
	net.Conn
	b *blackhole
}

func (c *holeConn) Write(p []byte) (int, error) {
	if c.b.cut.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// TestEtcdLinkCut: with the lock server <-> etcd link silently dropping
// traffic, a release (a write that may have been sent) is 504 outcome_unknown
// and an acquire is 503 unavailable once the keep-alive stream has a restart
// unanswered (it then restarts its lease before sending anything, which
// fails). The first acquire after the cut may already have sent its grant
// txn with its lease's restart: it is 504 or 503. A first release before the
// cut gives the server its receipt lease, so the second one sends its txn at
// once.
func TestEtcdLinkCut(t *testing.T) {
	te := startEtcd(t)
	var bh blackhole
	s, c := startServer(t, te, func(cfg *Config) {
		cfg.EtcdTimeout = 300 * time.Millisecond
		cfg.DialContext = bh.dial
	})
	g, err := c.Acquire(t.Context(), "r", 10*time.Second, 0)
	require.NoError(t, err)
	first, err := c.Acquire(t.Context(), "first", 10*time.Second, 0)
	require.NoError(t, err)
	require.NoError(t, c.Release(t.Context(), "first", first.LockToken))
	bh.cut.Store(true)

	err = c.Release(t.Context(), "r", g.LockToken)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, http.StatusGatewayTimeout, e.Status)
	assert.Equal(t, CodeOutcomeUnknown, e.Code)
	assert.ErrorIs(t, err, ErrOutcomeUnknown)

	_, err = c.Acquire(t.Context(), "r2", 10*time.Second, 0)
	require.ErrorAs(t, err, &e)
	assert.Contains(t, []int{http.StatusServiceUnavailable, http.StatusGatewayTimeout}, e.Status)
	unavailable := s.Stats().AcquireUnavailable
	_, err = c.Acquire(t.Context(), "r3", 10*time.Second, 0)
	require.ErrorAs(t, err, &e)
	assert.Equal(t, http.StatusServiceUnavailable, e.Status)
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.Equal(t, unavailable+1, s.Stats().AcquireUnavailable)
}

func TestPauseHoldsRequestsUntilResume(t *testing.T) {
	te := startEtcd(t)
	s, c := startServer(t, te, nil)
	s.Pause()
	require.True(t, s.Paused())
	done := make(chan error, 1)
	go func() {
		_, err := c.Acquire(t.Context(), "p", 5*time.Second, 0)
		done <- err
	}()
	require.Eventually(t, func() bool { return s.Stats().Requests == 1 }, 30*time.Second, 5*time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("answered while paused: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	assert.Zero(t, s.Stats().GrantTxns, "stopped before reaching etcd")
	s.Resume()
	assert.False(t, s.Paused())
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("not answered after Resume")
	}
}

// TestCloseWhilePausedThenRestartOnSameAddr: Close is prompt while paused,
// the in-flight request's outcome is unknown, and a new server can listen on
// the same address right away.
func TestCloseWhilePausedThenRestartOnSameAddr(t *testing.T) {
	te := startEtcd(t)
	s, err := New(Config{Endpoints: []string{te.url}})
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	c := &Client{BaseURL: s.URL()}
	addr := s.Addr()

	s.Pause()
	done := make(chan error, 1)
	go func() {
		_, err := c.Acquire(t.Context(), "p", 5*time.Second, 0)
		done <- err
	}()
	require.Eventually(t, func() bool { return s.Stats().Requests == 1 }, 30*time.Second, 5*time.Millisecond)
	start := time.Now()
	require.NoError(t, s.Close())
	assert.Less(t, time.Since(start), 10*time.Second, "Close returns while paused (it does not wait for the pause)")
	require.NoError(t, s.Close(), "idempotent")
	assert.ErrorIs(t, <-done, ErrOutcomeUnknown)

	s2, err := New(Config{Endpoints: []string{te.url}, Listen: addr})
	require.NoError(t, err)
	require.NoError(t, s2.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, s2.Close()) })
	assert.Equal(t, addr, s2.Addr())
	require.NoError(t, c.Health(t.Context()))
	_, err = c.Acquire(t.Context(), "p", 5*time.Second, 0)
	require.NoError(t, err)
}

// TestCloseCancelsBlockedWaiter: a waiter blocked in a watch does not hold Close up.
func TestCloseCancelsBlockedWaiter(t *testing.T) {
	te := startEtcd(t)
	s, err := New(Config{Endpoints: []string{te.url}})
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	c := &Client{BaseURL: s.URL()}
	_, err = c.Acquire(t.Context(), "w", 30*time.Second, 0)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := c.Acquire(t.Context(), "w", 30*time.Second, 60*time.Second)
		assert.ErrorIs(t, err, ErrOutcomeUnknown)
	}()
	require.Eventually(t, func() bool { return s.Stats().Waiters == 1 }, 30*time.Second, 5*time.Millisecond)
	start := time.Now()
	require.NoError(t, s.Close())
	assert.Less(t, time.Since(start), 10*time.Second, "it does not hang")
	wg.Wait()
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(Config{})
	assert.Error(t, err)
	_, err = New(Config{Endpoints: []string{"http://127.0.0.1:1"}, Unsafe: "yolo"})
	assert.Error(t, err)
}
