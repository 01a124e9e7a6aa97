package lockserver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestCloseLeavesNoGoroutines: after Close, nothing the server started runs.
// A first lifecycle warms etcd up (it starts serving goroutines lazily), then
// the second one must leave no goroutine behind.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	te := startEtcd(t)
	lifecycle := func() {
		s, err := New(Config{Endpoints: []string{te.url}})
		require.NoError(t, err)
		require.NoError(t, s.Start(t.Context()))
		c := &Client{BaseURL: s.URL(), HTTP: newTestHTTPClient(t)}
		g, err := c.Acquire(t.Context(), "leak", 10*time.Second, 0)
		require.NoError(t, err)
		_, err = c.Renew(t.Context(), "leak", g.LockToken, 0)
		require.NoError(t, err)
		require.NoError(t, c.Release(t.Context(), "leak", g.LockToken))
		g, err = c.Acquire(t.Context(), "leak", 10*time.Second, 0)
		require.NoError(t, err)
		_, err = c.Acquire(t.Context(), "leak", 10*time.Second, 100*time.Millisecond) // queues, times out
		require.ErrorIs(t, err, ErrBusy)
		require.NoError(t, c.Release(t.Context(), "leak", g.LockToken))
		require.NoError(t, s.Close())
		c.HTTP.CloseIdleConnections()
	}
	lifecycle()
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	lifecycle()
	goleak.VerifyNone(t, opts...)
}
