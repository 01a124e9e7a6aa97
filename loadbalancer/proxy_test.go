package loadbalancer

import (
	"context"
	"encoding/json"
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

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	backends := []*counting{newCounting(t), newCounting(t), newCounting(t)}
	bal := newTestBalancer(t, Config{Backends: urls(backends), HealthInterval: time.Hour})
	require.NoError(t, bal.Start(t.Context()))
	c := newClient(t)

	served := map[string]int{}
	for i := range 300 {
		body := `{"resourceId":"r","n":` + string(rune('0'+i%10)) + `}`
		got := c.post(t, bal.URL()+"/locks/acquire", body)
		require.Equal(t, http.StatusOK, got.status)
		require.Equal(t, body, got.body, "body forwarded intact")
		served[got.backend]++
	}
	want := map[string]int{backends[0].URL(): 100, backends[1].URL(): 100, backends[2].URL(): 100}
	assert.Equal(t, want, served, "X-Locksim-Backend names who served")
	for i, be := range backends {
		assert.EqualValues(t, 100, be.hits.Load(), "backend %d", i)
		st := bal.Stats()[i]
		assert.EqualValues(t, 100, st.Requests)
		assert.Zero(t, st.Failures)
		assert.Zero(t, st.InFlight)
	}
}

// holding is a backend whose /hold requests block until release is closed.
type holding struct {
	*counting
	held    chan string // receives the backend URL when a /hold arrives
	release chan struct{}
}

func newHolding(t *testing.T, held chan string, release chan struct{}) *holding {
	t.Helper()
	h := &holding{counting: &counting{}, held: held, release: release}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			h.held <- h.URL()
			select {
			case <-h.release:
			case <-r.Context().Done():
			}
			return
		}
		h.counting.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func TestLeastConnectionsPrefersIdleBackend(t *testing.T) {
	held, release := make(chan string, 1), make(chan struct{})
	backends := []*holding{newHolding(t, held, release), newHolding(t, held, release)}
	bal := newTestBalancer(t, Config{
		Backends:       []string{backends[0].URL(), backends[1].URL()},
		Policy:         PolicyLeastConnections,
		HealthInterval: time.Hour,
	})
	require.NoError(t, bal.Start(t.Context()))
	c := newClient(t)

	holdDone := make(chan result, 1)
	go func() {
		resp, err := c.hc.Get(bal.URL() + "/hold")
		if err == nil {
			resp.Body.Close()
			holdDone <- result{status: resp.StatusCode}
			return
		}
		holdDone <- result{}
	}()
	busy := <-held

	for range 10 {
		got := c.post(t, bal.URL()+"/fast", `{}`)
		require.Equal(t, http.StatusOK, got.status)
		assert.NotEqual(t, busy, got.backend, "the busy backend got a request")
	}
	close(release)
	assert.Equal(t, http.StatusOK, (<-holdDone).status)
}

func TestRefusedConnectionIsRetriedOnNextBackend(t *testing.T) {
	tests := []struct {
		name    string
		chunked bool
	}{
		{"content length", false},
		{"chunked body", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dead, live := deadURL(t), newCounting(t)
			// Fall is high so the dead backend stays "up" and is picked first.
			bal := newTestBalancer(t, Config{Backends: []string{dead, live.URL()}, Fall: 100})
			front := serveHandler(t, bal)

			body := `{"resourceId":"order:1","clientId":"c1","ttl":5}`
			var r io.Reader = strings.NewReader(body)
			if tt.chunked {
				r = io.MultiReader(r) // unknown length: sent chunked
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, front+"/locks/acquire", r)
			require.NoError(t, err)
			got := newClient(t).do(t, req)

			assert.Equal(t, http.StatusOK, got.status)
			assert.Equal(t, body, got.body, "the retried request carries the whole body")
			assert.Equal(t, live.URL(), got.backend)
			assert.EqualValues(t, 1, live.hits.Load())
			st := bal.Stats()
			assert.EqualValues(t, 1, st[0].Requests)
			assert.EqualValues(t, 1, st[0].Failures)
			assert.EqualValues(t, 1, st[1].Requests)
			assert.Zero(t, st[1].Failures)
		})
	}
}

// A refused connection counts toward Fall right away (passive marking).
func TestRefusedConnectionsTakeBackendDown(t *testing.T) {
	dead, live := deadURL(t), newCounting(t)
	bal := newTestBalancer(t, Config{Backends: []string{dead, live.URL()}, Fall: 2})
	front := serveHandler(t, bal)
	for range 4 {
		assert.Equal(t, http.StatusOK, post(t, front, "/x", `{}`).status)
	}
	st := bal.Stats()
	assert.False(t, st[0].Up)
	assert.EqualValues(t, 2, st[0].Requests, "skipped once down")
	assert.EqualValues(t, 4, live.hits.Load())
}

func TestBackendFailingMidRequestIsNotRetried(t *testing.T) {
	tests := []struct {
		name    string
		fail    func(w http.ResponseWriter)
		wantErr bool // the client sees a broken response rather than a 502
	}{
		{"hangs up before answering", func(w http.ResponseWriter) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}, false},
		{"hangs up mid-response", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"succ`)
			_ = http.NewResponseController(w).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var failHits sync.WaitGroup
			failHits.Add(1)
			failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/health" {
					return
				}
				_, _ = io.ReadAll(r.Body)
				failHits.Done() // a second call would panic: no duplicate
				tt.fail(w)
			}))
			t.Cleanup(failing.Close)
			live := newCounting(t)
			bal := newTestBalancer(t, Config{Backends: []string{failing.URL, live.URL()}, HealthInterval: time.Hour})
			require.NoError(t, bal.Start(t.Context()))

			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, bal.URL()+"/locks/acquire",
				strings.NewReader(`{"resourceId":"order:1"}`))
			require.NoError(t, err)
			resp, err := newClient(t).hc.Do(req)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}

			if tt.wantErr {
				// The response had started: all the balancer can do is
				// drop the connection (ReverseProxy's ErrAbortHandler).
				assert.Error(t, err, "a truncated response must not look complete")
			} else {
				require.NoError(t, err)
				assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
				assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
				assert.Equal(t, failing.URL, resp.Header.Get(BackendHeader))
				var got errorBody
				require.NoError(t, json.Unmarshal(body, &got))
				assert.False(t, got.Success)
				assert.Equal(t, "outcome_unknown", got.Code)
				assert.Contains(t, got.Error, failing.URL)
			}
			assert.Zero(t, live.hits.Load(), "the request was sent to another backend")
			st := bal.Stats()
			assert.EqualValues(t, 1, st[0].Requests)
			assert.EqualValues(t, 1, st[0].Failures)
			assert.Zero(t, st[1].Requests)
			assert.True(t, st[0].Up, "a mid-request failure is not a health signal")
		})
	}
}

func TestNoBackendUpAnswers503(t *testing.T) {
	const wantBody = `{"success":false,"error":"no healthy lock server","code":"unavailable"}`
	check := func(t *testing.T, got result) {
		t.Helper()
		assert.Equal(t, http.StatusServiceUnavailable, got.status)
		assert.JSONEq(t, wantBody, got.body)
		assert.Equal(t, "1", got.header.Get("Retry-After"))
		assert.Equal(t, "application/json", got.header.Get("Content-Type"))
		assert.Empty(t, got.backend)
	}

	t.Run("all marked down", func(t *testing.T) {
		bal := newTestBalancer(t, Config{Backends: []string{deadURL(t), deadURL(t)}, Fall: 1})
		bal.checkAll(t.Context())
		check(t, post(t, serveHandler(t, bal), "/locks/acquire", `{}`))
		for _, st := range bal.Stats() {
			assert.Zero(t, st.Requests, "nothing is attempted when all are down")
		}
	})
	t.Run("all refuse the connection", func(t *testing.T) {
		bal := newTestBalancer(t, Config{Backends: []string{deadURL(t), deadURL(t), deadURL(t)}, Fall: 100})
		check(t, post(t, serveHandler(t, bal), "/locks/acquire", `{}`))
		for _, st := range bal.Stats() {
			assert.EqualValues(t, 1, st.Requests, "each backend is tried exactly once")
		}
	})
}

// A body too large to buffer is streamed through intact, and therefore
// not resent after a refused connection.
func TestLargeBodyIsStreamedNotRetried(t *testing.T) {
	big := strings.Repeat("x", maxBufferedBody+1000)
	t.Run("streamed intact", func(t *testing.T) {
		live := newCounting(t)
		bal := newTestBalancer(t, Config{Backends: []string{live.URL()}})
		got := post(t, serveHandler(t, bal), "/x", big)
		assert.Equal(t, http.StatusOK, got.status)
		assert.Equal(t, len(big), len(got.body))
	})
	t.Run("not retried", func(t *testing.T) {
		live := newCounting(t)
		bal := newTestBalancer(t, Config{Backends: []string{deadURL(t), live.URL()}, Fall: 100})
		got := post(t, serveHandler(t, bal), "/x", big)
		assert.Equal(t, http.StatusServiceUnavailable, got.status)
		assert.Zero(t, live.hits.Load())
	})
}

func TestConcurrentRequests(t *testing.T) {
	backends := []*counting{newCounting(t), newCounting(t), newCounting(t)}
	bal := newTestBalancer(t, Config{Backends: urls(backends), Policy: PolicyLeastConnections, HealthInterval: 20 * time.Millisecond})
	require.NoError(t, bal.Start(t.Context()))
	c := newClient(t)
	const workers, each = 16, 15
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				got := c.post(t, bal.URL()+"/locks/acquire", `{"resourceId":"a"}`)
				assert.Equal(t, http.StatusOK, got.status)
			}
		})
	}
	wg.Wait()
	var total int64
	for i, be := range backends {
		total += be.hits.Load()
		st := bal.Stats()[i]
		assert.Zero(t, st.InFlight)
		assert.True(t, st.Up)
		assert.Positive(t, be.hits.Load(), "backend %d got no load", i)
	}
	assert.EqualValues(t, workers*each, total)
}

func urls(backends []*counting) []string {
	out := make([]string, len(backends))
	for i, b := range backends {
		out[i] = b.URL()
	}
	return out
}

// TestRetryResendsTheWholeBodyThroughTheInjectedDial: proxied requests
// connect through Config.Dial; a refused dial is retried on the next
// backend with the whole body.
func TestRetryResendsTheWholeBodyThroughTheInjectedDial(t *testing.T) {
	live := newCounting(t)
	const dead = "dead.invalid:1"
	var dials sync.Map
	bal := newTestBalancer(t, Config{
		Backends: []string{"http://" + dead, live.URL()},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			n, _ := dials.LoadOrStore(addr, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
			if addr == dead {
				return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("injected refusal")}
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		Fall: 100,
	})
	body := `{"resourceId":"order:7"}`
	got := post(t, serveHandler(t, bal), "/locks/acquire", body)
	assert.Equal(t, http.StatusOK, got.status)
	assert.Equal(t, body, got.body)
	assert.EqualValues(t, 1, bal.Stats()[0].Failures)
	n, ok := dials.Load(dead)
	require.True(t, ok, "the dead backend was dialed through Config.Dial")
	assert.EqualValues(t, 1, n.(*atomic.Int64).Load())
	_, ok = dials.Load(strings.TrimPrefix(live.URL(), "http://"))
	assert.True(t, ok, "the live backend too")
}
