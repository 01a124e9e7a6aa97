package loadbalancer

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHealthStateRiseFall(t *testing.T) {
	const rise, fall = 2, 3
	tests := []struct {
		name      string
		results   string // one letter per check: o ok, x failed
		wantUp    bool
		wantFlips int
	}{
		{"starts up", "", true, 0},
		{"fewer than fall failures keep it up", "xx", true, 0},
		{"fall failures in a row take it down", "xxx", false, 1},
		{"a success resets the failure count", "xxoxx", true, 0},
		{"one success is not enough to rise", "xxxo", false, 1},
		{"rise successes in a row bring it back", "xxxoo", true, 2},
		{"a failure resets the success count", "xxxoxo", false, 1},
		{"down and up twice", "xxxooxxxoo", true, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := healthState{up: true}
			flips := 0
			for _, r := range tt.results {
				if h.observe(r == 'o', rise, fall) {
					flips++
				}
			}
			assert.Equal(t, tt.wantUp, h.up, "up")
			assert.Equal(t, tt.wantFlips, flips, "flips")
		})
	}
}

// restartable is an httptest backend that can be closed (its listener and
// connections go away: connections are refused) and started again on the
// same address.
type restartable struct {
	t       *testing.T
	addr    string
	handler http.Handler
	srv     *httptest.Server
}

func newRestartable(t *testing.T, h http.Handler) *restartable {
	t.Helper()
	r := &restartable{t: t, handler: h}
	r.start("127.0.0.1:0")
	r.addr = r.srv.Listener.Addr().String()
	t.Cleanup(func() { r.srv.Close() })
	return r
}

func (r *restartable) start(addr string) {
	r.t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(r.t, err)
	r.srv = httptest.NewUnstartedServer(r.handler)
	r.srv.Listener = ln
	r.srv.Start()
}

func (r *restartable) URL() string { return "http://" + r.addr }
func (r *restartable) stop()       { r.srv.Close() }
func (r *restartable) restart()    { r.start(r.addr) }

// A closed backend goes down after exactly Fall failed checks, gets no
// traffic while down, and comes back after exactly Rise good checks. The
// checks are driven by hand so the counts are exact.
func TestClosedBackendGoesDownAfterFallAndUpAfterRise(t *testing.T) {
	a := newCounting(t)
	bk := &counting{}
	b2 := newRestartable(t, bk)
	bal := newTestBalancer(t, Config{Backends: []string{a.URL(), b2.URL()}, Rise: 2, Fall: 3})
	front := serveHandler(t, bal)
	ctx := t.Context()

	b2.stop()
	for range 2 {
		bal.checkAll(ctx)
	}
	st := bal.Stats()[1]
	require.True(t, st.Up, "still up after Fall-1 failed checks")
	assert.Contains(t, st.LastError, "refused")
	bal.checkAll(ctx)
	require.False(t, bal.Stats()[1].Up, "down after Fall failed checks")

	for range 4 {
		got := post(t, front, "/locks/acquire", `{}`)
		assert.Equal(t, http.StatusOK, got.status)
		assert.Equal(t, a.URL(), got.backend)
	}
	assert.Zero(t, bal.Stats()[1].Requests, "a down backend gets no requests")

	b2.restart()
	bal.checkAll(ctx)
	require.False(t, bal.Stats()[1].Up, "still down after Rise-1 good checks")
	bal.checkAll(ctx)
	st = bal.Stats()[1]
	require.True(t, st.Up, "up after Rise good checks")
	assert.Empty(t, st.LastError)

	before := bk.hits.Load()
	for range 4 {
		post(t, front, "/locks/acquire", `{}`)
	}
	assert.Equal(t, before+2, bk.hits.Load(), "back in the rotation")
}

// The same through the real checker goroutines started by Start.
func TestHealthLoopMarksBackendDownAndUp(t *testing.T) {
	a := newCounting(t)
	b2 := newRestartable(t, &counting{})
	stamp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	bal := newTestBalancer(t, Config{
		Backends:       []string{a.URL(), b2.URL()},
		HealthInterval: 10 * time.Millisecond,
		Rise:           2,
		Fall:           3,
		Now:            func() time.Time { return stamp },
	})
	require.NoError(t, bal.Start(t.Context()))
	c := newClient(t)

	b2.stop()
	require.Eventually(t, func() bool { return !bal.Stats()[1].Up }, 30*time.Second, 5*time.Millisecond)
	st := bal.Stats()[1]
	assert.Equal(t, stamp, st.LastCheck, "checks are stamped with Config.Now")
	assert.NotEmpty(t, st.LastError)
	got := c.post(t, bal.URL()+"/locks/acquire", `{}`)
	assert.Equal(t, a.URL(), got.backend)

	b2.restart()
	require.Eventually(t, func() bool { return bal.Stats()[1].Up }, 30*time.Second, 5*time.Millisecond)
}

// A /health answer other than 2xx/3xx (a lock server without etcd quorum
// answers 503) is a failed check.
func TestUnhealthyStatusFailsCheck(t *testing.T) {
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"status":"no quorum"}`, http.StatusServiceUnavailable)
	}))
	t.Cleanup(sick.Close)
	bal := newTestBalancer(t, Config{Backends: []string{sick.URL}, Fall: 1})
	bal.checkAll(t.Context())
	st := bal.Stats()[0]
	assert.False(t, st.Up)
	assert.True(t, strings.Contains(st.LastError, "status 503"), st.LastError)
}
