package loadbalancer

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nothingWithin fails the test if ch delivers within d (a window, for
// "this must not happen while paused").
func nothingWithin[T any](t *testing.T, ch <-chan T, d time.Duration, msg string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s: %+v", msg, v)
	case <-time.After(d):
	}
}

func TestPausedBalancerHoldsNewRequestsUntilResumed(t *testing.T) {
	live := newCounting(t)
	bal := newTestBalancer(t, Config{Backends: []string{live.URL()}, HealthInterval: time.Hour})
	require.NoError(t, bal.Start(t.Context()))
	bal.Pause()
	assert.True(t, bal.Paused())

	done := make(chan result, 1)
	go func() { done <- post(t, bal.URL(), "/x", `{"a":1}`) }()
	nothingWithin(t, done, 200*time.Millisecond, "a paused balancer answered")
	assert.Zero(t, live.hits.Load(), "a paused balancer forwarded a request")

	bal.Resume()
	assert.False(t, bal.Paused())
	r := <-done
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, `{"a":1}`, r.body)
	assert.Equal(t, int64(1), live.hits.Load())
}

func TestPausedBalancerHoldsTheAnswerOfARequestInFlight(t *testing.T) {
	held, release := make(chan string, 1), make(chan struct{})
	h := newHolding(t, held, release)
	bal := newTestBalancer(t, Config{Backends: []string{h.URL()}, HealthInterval: time.Hour})
	require.NoError(t, bal.Start(t.Context()))

	done := make(chan result, 1)
	go func() { done <- post(t, bal.URL(), "/hold", `{}`) }()
	<-held
	bal.Pause()
	close(release) // the lock server answers; the frozen balancer sits on it
	nothingWithin(t, done, 200*time.Millisecond, "a paused balancer passed an answer on")
	bal.Resume()
	assert.Equal(t, http.StatusOK, (<-done).status)
}

func TestPausedBalancerNeverAnswersAClientThatGaveUp(t *testing.T) {
	live := newCounting(t)
	bal := newTestBalancer(t, Config{Backends: []string{live.URL()}, HealthInterval: time.Hour})
	require.NoError(t, bal.Start(t.Context()))
	bal.Pause()
	defer bal.Resume()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, bal.URL()+"/x", strings.NewReader(`{}`))
	require.NoError(t, err)
	_, err = (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Zero(t, live.hits.Load())
}

func TestCheckPathSaysWhetherAnyBackendIsUp(t *testing.T) {
	live := newCounting(t)
	dead := deadURL(t)
	bal := newTestBalancer(t, Config{Backends: []string{live.URL(), dead}, Fall: 1, HealthInterval: time.Hour})
	base := serveHandler(t, bal)

	get := func() (int, string) {
		resp, err := http.Get(base + CheckPath)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	bal.checkAll(t.Context())
	code, body := get()
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"status":"ok","backendsUp":1,"backends":2}`, body)
	assert.Zero(t, live.hits.Load(), "the balancer answers it itself")

	live.srv.Close()
	bal.checkAll(t.Context())
	code, body = get()
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.JSONEq(t, `{"status":"no healthy lock server","backendsUp":0,"backends":2}`, body)

	resp, err := http.Post(base+CheckPath, "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}
