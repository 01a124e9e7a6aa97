package loadbalancer

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewFillsDefaults(t *testing.T) {
	bal := newTestBalancer(t, Config{Backends: []string{"http://127.0.0.1:1/"}})
	got := bal.cfg
	assert.Equal(t, DefaultListen, got.Listen)
	assert.Equal(t, PolicyRoundRobin, got.Policy)
	assert.Equal(t, DefaultHealthPath, got.HealthPath)
	assert.Equal(t, DefaultHealthInterval, got.HealthInterval)
	assert.Equal(t, DefaultHealthTimeout, got.HealthTimeout)
	assert.Equal(t, DefaultRise, got.Rise)
	assert.Equal(t, DefaultFall, got.Fall)
	tr, ok := got.Transport.(*http.Transport)
	require.True(t, ok)
	assert.Equal(t, 512, tr.MaxIdleConnsPerHost)
	assert.Nil(t, tr.Proxy)
	require.NotNil(t, got.Now)
	st := bal.Stats()
	require.Len(t, st, 1)
	assert.Equal(t, "http://127.0.0.1:1", st[0].URL, "trailing slash trimmed")
	assert.True(t, st[0].Up, "backends start up")
	assert.Equal(t, "http://127.0.0.1:1/health", bal.backends[0].healthURL)
}

func TestNewRejectsBadConfig(t *testing.T) {
	ok := []string{"http://127.0.0.1:1"}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no backends", Config{}},
		{"backend without scheme", Config{Backends: []string{"127.0.0.1:1"}}},
		{"backend with query", Config{Backends: []string{"http://127.0.0.1:1/?a=b"}}},
		{"unknown policy", Config{Backends: ok, Policy: "random"}},
		{"health path without slash", Config{Backends: ok, HealthPath: "health"}},
		{"negative fall", Config{Backends: ok, Fall: -1}},
		{"negative interval", Config{Backends: ok, HealthInterval: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.True(t, strings.HasPrefix(err.Error(), "loadbalancer: "), err.Error())
		})
	}
}

func TestStartAddrURLAndLifecycle(t *testing.T) {
	live := newCounting(t)
	bal, err := New(Config{Backends: []string{live.URL()}})
	require.NoError(t, err)
	assert.Empty(t, bal.Addr(), "no address before Start")
	assert.Empty(t, bal.URL())

	require.NoError(t, bal.Start(t.Context()))
	assert.True(t, strings.HasPrefix(bal.Addr(), "127.0.0.1:"), bal.Addr())
	assert.Equal(t, "http://"+bal.Addr(), bal.URL())
	assert.ErrorIs(t, bal.Start(t.Context()), ErrStarted)
	assert.Equal(t, http.StatusOK, post(t, bal.URL(), "/x", `{}`).status)

	require.NoError(t, bal.Close())
	require.NoError(t, bal.Close(), "Close is idempotent")
	assert.ErrorIs(t, bal.Start(t.Context()), ErrClosed)
	_, err = http.Get(bal.URL() + "/x")
	assert.Error(t, err, "the listener is closed")
}

func TestCloseBeforeStart(t *testing.T) {
	bal, err := New(Config{Backends: []string{"http://127.0.0.1:1"}})
	require.NoError(t, err)
	require.NoError(t, bal.Close())
	assert.ErrorIs(t, bal.Start(t.Context()), ErrClosed)
}

// Close is abrupt: it does not wait for requests in flight, it cancels
// them (the backend sees its request cancelled) and still returns only
// when its goroutines are gone (TestMain checks for leaks).
func TestCloseCancelsRequestsInFlight(t *testing.T) {
	held, release := make(chan string, 1), make(chan struct{})
	defer close(release)
	cancelled := make(chan struct{})
	h := newHolding(t, held, release)
	inner := h.srv.Config.Handler
	h.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(w, r)
		if r.Context().Err() != nil {
			close(cancelled)
		}
	})
	bal, err := New(Config{Backends: []string{h.URL()}, HealthInterval: time.Hour})
	require.NoError(t, err)
	require.NoError(t, bal.Start(t.Context()))
	c := newClient(t)

	clientErr := make(chan error, 1)
	go func() {
		resp, err := c.hc.Get(bal.URL() + "/hold")
		if err == nil {
			resp.Body.Close()
		}
		clientErr <- err
	}()
	<-held

	closed := make(chan error, 1)
	go func() { closed <- bal.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the request in flight")
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend request was not cancelled")
	}
	assert.Error(t, <-clientErr, "the client's connection was dropped")
}
