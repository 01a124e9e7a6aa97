package loadbalancer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
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

// startTCP starts a tcp-mode balancer in front of backends and waits for
// the first health check of each; later checks run hourly unless cfg says
// otherwise.
func startTCP(t *testing.T, cfg Config) *Balancer {
	t.Helper()
	cfg.Mode = ModeTCP
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = time.Hour
	}
	bal := newTestBalancer(t, cfg)
	require.NoError(t, bal.Start(t.Context()))
	require.Eventually(t, func() bool {
		for _, st := range bal.Stats() {
			if st.LastCheck.IsZero() {
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond, "first health checks")
	return bal
}

// fresh is a client that opens a new connection per request.
func fresh(t *testing.T) *client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{hc: &http.Client{Transport: tr}}
}

// waitIdle waits until no connection is open through bal.
func waitIdle(t *testing.T, bal *Balancer) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, st := range bal.Stats() {
			if st.InFlight != 0 {
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond, "connections through the balancer closed")
}

func TestTCPRoundRobinSpreadsConnections(t *testing.T) {
	backends := []*counting{newCounting(t), newCounting(t), newCounting(t)}
	bal := startTCP(t, Config{Backends: urls(backends)})
	c := fresh(t)
	for range 30 {
		got := c.post(t, bal.URL()+"/locks/acquire", `{"resourceId":"a"}`)
		require.Equal(t, http.StatusOK, got.status)
		assert.Equal(t, `{"resourceId":"a"}`, got.body)
		assert.Empty(t, got.backend, "tcp mode adds no header")
	}
	for i, be := range backends {
		assert.EqualValues(t, 10, be.hits.Load(), "backend %d", i)
		assert.EqualValues(t, 10, bal.Stats()[i].Requests, "connections to backend %d", i)
	}
}

// A kept-alive connection stays on its backend: the backend is chosen per
// connection, not per request.
func TestTCPKeptAliveConnectionStaysOnItsBackend(t *testing.T) {
	backends := []*counting{newCounting(t), newCounting(t)}
	bal := startTCP(t, Config{Backends: urls(backends)})
	c := newClient(t) // one kept-alive connection, used serially
	for range 10 {
		require.Equal(t, http.StatusOK, c.post(t, bal.URL()+"/x", `{}`).status)
	}
	assert.ElementsMatch(t, []int64{0, 10}, []int64{backends[0].hits.Load(), backends[1].hits.Load()})
}

func TestTCPLeastConnectionsCountsOpenConnections(t *testing.T) {
	backends := []*counting{newCounting(t), newCounting(t)}
	bal := startTCP(t, Config{Backends: urls(backends), Policy: PolicyLeastConnections})
	// An idle connection: the balancer connects it to a backend at once.
	idleConn, err := net.Dial("tcp", bal.Addr())
	require.NoError(t, err)
	defer idleConn.Close()
	var busy int
	require.Eventually(t, func() bool {
		for i, st := range bal.Stats() {
			if st.InFlight == 1 {
				busy = i
				return true
			}
		}
		return false
	}, 10*time.Second, time.Millisecond)
	c := fresh(t)
	for range 6 {
		require.Equal(t, http.StatusOK, c.post(t, bal.URL()+"/x", `{}`).status)
		// Wait for the connection to be gone so that the next one sees 1 : 0.
		require.Eventually(t, func() bool { return bal.Stats()[1-busy].InFlight == 0 }, 10*time.Second, time.Millisecond)
	}
	assert.Zero(t, backends[busy].hits.Load(), "every new connection went to the backend with none open")
	assert.EqualValues(t, 6, backends[1-busy].hits.Load())
}

func TestTCPRefusedConnectionTriesTheNextBackend(t *testing.T) {
	dead, live := deadURL(t), newCounting(t)
	bal := startTCP(t, Config{Backends: []string{dead, live.URL()}, Fall: 3})
	c := fresh(t)
	for range 4 {
		require.Equal(t, http.StatusOK, c.post(t, bal.URL()+"/x", `{}`).status)
	}
	st := bal.Stats()
	assert.False(t, st[0].Up, "the first check and two refused connections in a row take it down (Fall 3)")
	assert.EqualValues(t, 2, st[0].Requests, "not tried once down")
	assert.EqualValues(t, 2, st[0].Failures)
	assert.EqualValues(t, 4, live.hits.Load())
}

// toggled is a backend whose /health answers 503 while sick.
type toggled struct {
	*counting
	sick atomic.Bool
}

func newToggled(t *testing.T) *toggled {
	t.Helper()
	tg := &toggled{counting: &counting{}}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && tg.sick.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		tg.counting.ServeHTTP(w, r)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

// A backend that fails its checks gets no new connections; a connection
// made to it before stays on it.
func TestTCPHealthCheckEvictsForNewConnectionsOnly(t *testing.T) {
	a, b := newToggled(t), newToggled(t)
	bal := startTCP(t, Config{Backends: []string{a.URL(), b.URL()}, Fall: 1, Rise: 1})
	kept := newClient(t)
	require.Equal(t, http.StatusOK, kept.post(t, bal.URL()+"/x", `{}`).status)
	first, other := a, b
	if b.hits.Load() == 1 {
		first, other = b, a
	}
	first.sick.Store(true)
	bal.checkAll(t.Context())
	require.False(t, bal.Stats()[map[*toggled]int{a: 0, b: 1}[first]].Up)

	c := fresh(t)
	for range 5 {
		require.Equal(t, http.StatusOK, c.post(t, bal.URL()+"/x", `{}`).status)
	}
	assert.EqualValues(t, 5, other.hits.Load(), "new connections go to the healthy backend")
	require.Equal(t, http.StatusOK, kept.post(t, bal.URL()+"/x", `{}`).status)
	assert.EqualValues(t, 2, first.hits.Load(), "the established connection stayed on its backend")

	first.sick.Store(false)
	bal.checkAll(t.Context())
	kept.hc.CloseIdleConnections()
	waitIdle(t, bal)
	hits := first.hits.Load()
	for range 4 {
		require.Equal(t, http.StatusOK, c.post(t, bal.URL()+"/x", `{}`).status)
		waitIdle(t, bal)
	}
	assert.EqualValues(t, hits+2, first.hits.Load(), "back up: it gets its share again")
}

// echoServer accepts connections and echoes every byte until the client
// half-closes, then closes. It answers nothing else, so health checks fail
// (the tests keep Fall high enough).
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			})
		}
	})
	return "http://" + ln.Addr().String()
}

func TestTCPBytesPassUnchangedBothWays(t *testing.T) {
	bal := startTCP(t, Config{Backends: []string{echoServer(t)}, Fall: 100})
	conn, err := net.Dial("tcp", bal.Addr())
	require.NoError(t, err)
	defer conn.Close()
	data := make([]byte, 1<<20) // every byte value, many copy buffers long
	_, _ = rand.Read(data)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(conn)
		got <- b
	}()
	_, err = conn.Write(data)
	require.NoError(t, err)
	require.NoError(t, conn.(*net.TCPConn).CloseWrite(), "the half-close reaches the backend")
	select {
	case b := <-got:
		assert.True(t, bytes.Equal(data, b), "echoed %d of %d bytes, equal: %v", len(b), len(data), bytes.Equal(data, b))
	case <-time.After(20 * time.Second):
		t.Fatal("the echo did not end after the half-close")
	}
	waitIdle(t, bal)
}

// With no backend to take it, a client's connection is reset: the
// balancer cannot answer in HTTP.
func TestTCPNoBackendResetsTheConnection(t *testing.T) {
	bal := startTCP(t, Config{Backends: []string{deadURL(t), deadURL(t)}, Fall: 100})
	_, err := fresh(t).hc.Post(bal.URL()+"/locks/acquire", "application/json", strings.NewReader(`{}`))
	require.Error(t, err)
	for _, st := range bal.Stats() {
		assert.EqualValues(t, 1, st.Requests, "each backend tried once")
		assert.EqualValues(t, 1, st.Failures)
	}
	assert.EqualValues(t, 1, bal.metrics.unserved.Load())
}

// A backend that dies mid-request ends the client's connection: no answer,
// and the request is not sent anywhere else.
func TestTCPBackendDyingMidRequestEndsTheClientConnection(t *testing.T) {
	held, release := make(chan string, 1), make(chan struct{})
	defer close(release)
	h := newHolding(t, held, release)
	other := newCounting(t)
	bal := startTCP(t, Config{Backends: []string{h.URL(), other.URL()}})
	errc := make(chan error, 1)
	go func() {
		resp, err := fresh(t).hc.Get(bal.URL() + "/hold")
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-held
	h.srv.CloseClientConnections() // the backend's connections die
	select {
	case err := <-errc:
		require.Error(t, err, "no answer: the client sees its connection end")
	case <-time.After(10 * time.Second):
		t.Fatal("the client's connection stayed open")
	}
	assert.Zero(t, other.hits.Load(), "never resent")
	waitIdle(t, bal)
}

// Close drops every connection, idle or busy, and returns when the
// goroutines are gone (TestMain checks for leaks).
func TestTCPCloseDropsConnections(t *testing.T) {
	held, release := make(chan string, 1), make(chan struct{})
	defer close(release)
	h := newHolding(t, held, release)
	bal := startTCP(t, Config{Backends: []string{h.URL()}})
	idleConn, err := net.Dial("tcp", bal.Addr())
	require.NoError(t, err)
	defer idleConn.Close()
	errc := make(chan error, 1)
	go func() {
		resp, err := fresh(t).hc.Get(bal.URL() + "/hold")
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-held

	closed := make(chan error, 1)
	go func() { closed <- bal.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the connections")
	}
	require.Error(t, <-errc, "the busy connection was dropped")
	_ = idleConn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = idleConn.Read(make([]byte, 1))
	assert.False(t, errors.Is(err, context.DeadlineExceeded) || isTimeout(err), "the idle connection was closed: %v", err)
	require.NoError(t, bal.Close(), "idempotent")
	_, err = net.Dial("tcp", bal.Addr())
	assert.Error(t, err, "the listener is closed")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestTCPPauseHoldsBytesUntilResumed(t *testing.T) {
	live := newCounting(t)
	bal := startTCP(t, Config{Backends: []string{live.URL()}})
	c := newClient(t)
	require.Equal(t, http.StatusOK, c.post(t, bal.URL()+"/x", `{}`).status) // a connection exists
	bal.Pause()
	done := make(chan result, 1)
	go func() { done <- c.post(t, bal.URL()+"/x", `{"n":2}`) }()
	nothingWithin(t, done, 200*time.Millisecond, "answered while paused")
	assert.EqualValues(t, 1, live.hits.Load(), "the request was held before the backend")
	bal.Resume()
	got := <-done
	assert.Equal(t, http.StatusOK, got.status)
	assert.Equal(t, `{"n":2}`, got.body)
}

// Shutdown lets a request in flight finish, closes idle connections and
// returns nil once none is left.
func TestTCPShutdownDrainsConnections(t *testing.T) {
	held, release := make(chan string, 1), make(chan struct{})
	h := newHolding(t, held, release)
	bal, err := New(Config{Backends: []string{h.URL()}, Mode: ModeTCP, HealthInterval: time.Hour})
	require.NoError(t, err)
	require.NoError(t, bal.Start(t.Context()))
	kept := newClient(t)
	require.Equal(t, http.StatusOK, kept.post(t, bal.URL()+"/x", `{}`).status) // now idle
	done := make(chan result, 1)
	go func() {
		resp, err := fresh(t).hc.Get(bal.URL() + "/hold")
		if err != nil {
			done <- result{}
			return
		}
		defer resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	<-held
	shut := make(chan error, 1)
	go func() { shut <- bal.Shutdown(context.Background()) }()
	nothingWithin(t, shut, 200*time.Millisecond, "Shutdown returned with a request in flight")
	_, err = net.Dial("tcp", bal.Addr())
	require.Error(t, err, "no new connections while draining")
	close(release)
	assert.Equal(t, http.StatusOK, (<-done).status, "the request in flight got its answer")
	select {
	case err := <-shut:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not close the idle connections")
	}
}

func TestTCPShutdownCutsWhatIsBusyAtTheDeadline(t *testing.T) {
	held, release := make(chan string, 1), make(chan struct{})
	defer close(release)
	h := newHolding(t, held, release)
	bal, err := New(Config{Backends: []string{h.URL()}, Mode: ModeTCP, HealthInterval: time.Hour})
	require.NoError(t, err)
	require.NoError(t, bal.Start(t.Context()))
	errc := make(chan error, 1)
	go func() {
		resp, err := fresh(t).hc.Get(bal.URL() + "/hold")
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-held
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, bal.Shutdown(ctx), context.DeadlineExceeded)
	require.Error(t, <-errc, "the busy connection was cut")
}

// AdminListen serves the balancer's own paths; in tcp mode the main
// address passes them to a backend like any other bytes.
func TestTCPAdminAddressServesMetricsAndCheck(t *testing.T) {
	live := newCounting(t)
	bal := startTCP(t, Config{Backends: []string{live.URL()}, AdminListen: "127.0.0.1:0"})
	admin := "http://" + bal.AdminAddr()
	c := newClient(t)
	got := c.do(t, mustGet(t, admin+CheckPath))
	assert.Equal(t, http.StatusOK, got.status)
	assert.JSONEq(t, `{"status":"ok","backendsUp":1,"backends":1}`, got.body)
	require.Equal(t, http.StatusOK, c.post(t, bal.URL()+"/x", `{}`).status)
	got = c.do(t, mustGet(t, admin+MetricsPath))
	assert.Equal(t, http.StatusOK, got.status)
	assert.Contains(t, got.body, `loadbalancer_backend_forwarded_total{backend="`+live.URL()+`"} 1`)
	assert.Contains(t, got.body, "loadbalancer_unserved_connections_total 0")
	assert.Equal(t, http.StatusNotFound, c.do(t, mustGet(t, admin+"/locks/acquire")).status)

	before := live.hits.Load()
	assert.Equal(t, http.StatusOK, c.do(t, mustGet(t, bal.URL()+MetricsPath)).status)
	assert.Equal(t, before+1, live.hits.Load(), "the main address forwarded /metrics to the backend")
}

func mustGet(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	return req
}
