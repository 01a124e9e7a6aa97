package loadbalancer

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingDial dials for real and counts the dials by address.
type countingDial struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *countingDial) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	if d.n == nil {
		d.n = map[string]int{}
	}
	d.n[addr]++
	d.mu.Unlock()
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

func (d *countingDial) count(url string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[strings.TrimPrefix(url, "http://")]
}

func idleConns(be *backend) int {
	be.pool.mu.Lock()
	defer be.pool.mu.Unlock()
	return len(be.pool.idle)
}

func TestKeptAliveConnectionIsReused(t *testing.T) {
	live := newCounting(t)
	var d countingDial
	bal := newTestBalancer(t, Config{Backends: []string{live.URL()}, Dial: d.dial})
	front := serveHandler(t, bal)
	c := newClient(t)
	for range 20 {
		require.Equal(t, http.StatusOK, c.post(t, front+"/x", `{}`).status)
	}
	assert.Equal(t, 1, d.count(live.URL()), "one connection for 20 requests in a row")
	assert.Equal(t, 1, idleConns(bal.backends[0]))
}

// A kept-alive connection that its backend closes while idle leaves the
// pool at once: the next request is not written into a dead connection
// (which would end it outcome_unknown), it goes on a new one.
func TestIdleConnectionClosedByTheBackendLeavesThePool(t *testing.T) {
	live := newCounting(t)
	var d countingDial
	bal := newTestBalancer(t, Config{Backends: []string{live.URL()}, Dial: d.dial})
	front := serveHandler(t, bal)
	c := newClient(t)
	require.Equal(t, http.StatusOK, c.post(t, front+"/x", `{}`).status)
	require.Equal(t, 1, idleConns(bal.backends[0]))

	live.srv.CloseClientConnections() // the lock server restarted, say
	require.Eventually(t, func() bool { return idleConns(bal.backends[0]) == 0 }, 10*time.Second, time.Millisecond,
		"the closed connection left the pool")
	got := c.post(t, front+"/x", `{"n":2}`)
	assert.Equal(t, http.StatusOK, got.status, got.body)
	assert.Equal(t, 2, d.count(live.URL()), "a new connection")
	assert.Zero(t, bal.Stats()[0].Failures)
}

// rawBackend serves one canned answer per request, read as HTTP/1.1 with
// a Content-Length body, and records each request's head.
type rawBackend struct {
	ln      net.Listener
	answer  string
	heads   chan string
	wg      sync.WaitGroup
	closeIt bool // close the connection after each answer
}

func newRawBackend(t *testing.T, answer string, closeIt bool) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	rb := &rawBackend{ln: ln, answer: answer, heads: make(chan string, 16), closeIt: closeIt}
	t.Cleanup(func() { _ = ln.Close(); rb.wg.Wait() })
	rb.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rb.wg.Go(func() { rb.serve(c) })
		}
	})
	return rb
}

func (rb *rawBackend) URL() string { return "http://" + rb.ln.Addr().String() }

func (rb *rawBackend) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		var head strings.Builder
		_ = req.Header.Write(&head)
		_, _ = io.Copy(io.Discard, req.Body)
		select {
		case rb.heads <- req.Method + " " + req.RequestURI + " host=" + req.Host + "\n" + head.String():
		default:
		}
		if _, err := io.WriteString(c, rb.answer); err != nil || rb.closeIt {
			return
		}
	}
}

func TestAnswersPassThrough(t *testing.T) {
	big := strings.Repeat("y", 5000)
	tests := []struct {
		name      string
		answer    string
		closeIt   bool
		method    string
		wantCode  int
		wantBody  string
		wantHdr   map[string][]string
		wantNoHdr []string
	}{
		{"content length", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", false,
			http.MethodPost, 200, "{}", map[string][]string{"Content-Type": {"application/json"}}, nil},
		{"large body declared", "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + big, false,
			http.MethodPost, 200, big, map[string][]string{"Content-Length": {"5000"}}, []string{"Content-Type"}},
		{"chunked", "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n", false,
			http.MethodPost, 201, "abcde", nil, nil},
		{"until close", "HTTP/1.0 200 OK\r\nX-A: a\r\n\r\nstream", true,
			http.MethodPost, 200, "stream", map[string][]string{"X-A": {"a"}}, nil},
		{"interim answers skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nk", false,
			http.MethodPost, 200, "k", nil, []string{"Link"}},
		{"no content", "HTTP/1.1 204 No Content\r\nX-A: a\r\n\r\n", false,
			http.MethodPost, 204, "", map[string][]string{"X-A": {"a"}}, nil},
		{"head", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false,
			http.MethodHead, 200, "", map[string][]string{"Content-Length": {"10"}}, nil},
		{"repeated and hop-by-hop headers", "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nConnection: X-Hop, keep-alive\r\nX-Hop: h\r\nKeep-Alive: timeout=5\r\nX-Locksim-Backend: forged\r\nContent-Length: 0\r\n\r\n", false,
			http.MethodPost, 200, "", map[string][]string{"Set-Cookie": {"a=1", "b=2"}}, []string{"X-Hop", "Keep-Alive", "Connection"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rb := newRawBackend(t, tt.answer, tt.closeIt)
			bal := newTestBalancer(t, Config{Backends: []string{rb.URL()}})
			front := serveHandler(t, bal)
			c := newClient(t)
			for range 2 { // a second request on the same connection when it is kept
				req, err := http.NewRequestWithContext(t.Context(), tt.method, front+"/p?q=1", strings.NewReader(`{"a":1}`))
				require.NoError(t, err)
				got := c.do(t, req)
				assert.Equal(t, tt.wantCode, got.status)
				assert.Equal(t, tt.wantBody, got.body)
				assert.Equal(t, rb.URL(), got.backend)
				for k, v := range tt.wantHdr {
					assert.Equal(t, v, got.header.Values(k), k)
				}
				for _, k := range tt.wantNoHdr {
					assert.Empty(t, got.header.Values(k), k)
				}
			}
			st := bal.Stats()[0]
			assert.Zero(t, st.Failures)
			assert.EqualValues(t, 2, st.Requests)
		})
	}
}

func TestRequestHeadIsForwardedWithoutHopHeaders(t *testing.T) {
	rb := newRawBackend(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false)
	bal := newTestBalancer(t, Config{Backends: []string{rb.URL()}})
	front := serveHandler(t, bal)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, front+"/locks/acquire?x=1", strings.NewReader(`{"resourceId":"a"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer k")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "secret")
	req.Header.Set("Keep-Alive", "timeout=5")
	require.Equal(t, http.StatusOK, newClient(t).do(t, req).status)
	head := <-rb.heads
	assert.True(t, strings.HasPrefix(head, "POST /locks/acquire?x=1 host="+strings.TrimPrefix(rb.URL(), "http://")+"\n"), head)
	for _, want := range []string{"Content-Type: application/json", "Authorization: Bearer k", "Content-Length: 18"} {
		assert.Contains(t, head, want)
	}
	for _, not := range []string{"X-Hop", "Keep-Alive", "Connection"} {
		assert.NotContains(t, head, not)
	}
}

func TestMalformedAnswerIsOutcomeUnknown(t *testing.T) {
	for name, answer := range map[string]string{
		"garbage":         "hello\r\n\r\n",
		"bad length":      "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
		"unknown coding":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"switching":       "HTTP/1.1 101 Switching Protocols\r\n\r\n",
		"closed mid-head": "HTTP/1.1 200 OK\r\nContent-",
	} {
		t.Run(name, func(t *testing.T) {
			rb := newRawBackend(t, answer, true)
			live := newCounting(t)
			bal := newTestBalancer(t, Config{Backends: []string{rb.URL(), live.URL()}})
			got := post(t, serveHandler(t, bal), "/locks/acquire", `{}`)
			assert.Equal(t, http.StatusBadGateway, got.status)
			assert.Contains(t, got.body, `"code":"outcome_unknown"`)
			assert.Zero(t, live.hits.Load(), "never resent")
			assert.EqualValues(t, 1, bal.Stats()[0].Failures)
		})
	}
}

// A client that gives up cancels its request at the backend: the
// balancer closes the backend's connection.
func TestClientLeavingCancelsTheBackendRequest(t *testing.T) {
	held, release := make(chan string, 1), make(chan struct{})
	defer close(release)
	var cancelled atomic.Bool
	h := newHolding(t, held, release)
	inner := h.srv.Config.Handler
	h.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(w, r)
		if r.Context().Err() != nil {
			cancelled.Store(true)
		}
	})
	bal := newTestBalancer(t, Config{Backends: []string{h.URL()}})
	front := serveHandler(t, bal)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front+"/hold", nil)
		resp, err := newClient(t).hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-held
	cancel()
	require.Error(t, <-errc)
	require.Eventually(t, cancelled.Load, 10*time.Second, time.Millisecond, "the backend saw its request cancelled")
	require.Eventually(t, func() bool { return bal.Stats()[0].InFlight == 0 }, 10*time.Second, time.Millisecond)
	assert.Zero(t, bal.Stats()[0].Failures, "a client leaving is not the backend's failure")
}

func TestCloseClosesPooledConnections(t *testing.T) {
	live := newCounting(t)
	bal, err := New(Config{Backends: []string{live.URL()}})
	require.NoError(t, err)
	srv := httptest.NewServer(bal.Handler())
	require.Equal(t, http.StatusOK, post(t, srv.URL, "/x", `{}`).status)
	srv.Close()
	require.Equal(t, 1, idleConns(bal.backends[0]))
	require.NoError(t, bal.Close()) // TestMain fails on a watcher left behind
	assert.Zero(t, idleConns(bal.backends[0]))
}
