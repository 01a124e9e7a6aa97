package cluster

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// lingerOpts ignores the goroutines that etcd leaves behind for up to ~12 s
// after a hard stop: peer HTTP connections (server and client side) whose
// other end belonged to a member that is gone; they time out on their own.
var lingerOpts = []goleak.Option{
	goleak.IgnoreAnyFunction("net/http.(*connReader).abortPendingRead"),
	goleak.IgnoreAnyFunction("net/http.(*connReader).backgroundRead"),
	goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
}

// TestStartStopCyclesNoLeak is deliberately not parallel: it counts the
// whole process's goroutines, and sequential tests run before parallel ones.
func TestStartStopCyclesNoLeak(t *testing.T) {
	before := goleak.IgnoreCurrent()
	base := runtime.NumGoroutine()
	const cycles = 5
	start := time.Now()
	for i := range cycles {
		c, err := New(Config{UnsafeNoFsync: true, Dir: t.TempDir()})
		require.NoError(t, err)
		require.NoError(t, c.Start(t.Context()))
		cli := clientFor(t, c, c.Names()...)
		put(t, cli, "/cycle", "x")
		require.NoError(t, cli.Close())
		var urls []string
		for _, s := range c.Status() {
			urls = append(urls, s.ClientURL, s.PeerURL)
		}
		require.NoError(t, c.Crash(c.Names()[i%3]), "a crashed member is also cleaned up by Close")
		require.NoError(t, c.Close())
		for _, u := range urls {
			requireFree(t, u)
		}
	}
	t.Logf("%d start/put/crash/close cycles: %v", cycles, time.Since(start).Round(time.Millisecond))
	after := runtime.NumGoroutine()
	// Apart from the known lingering keep-alive loops, nothing is left.
	require.NoError(t, goleak.Find(append(lingerOpts, before)...))
	// And the lingering ones do end.
	lingerStart := time.Now()
	assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= base+2 }, 20*time.Second, 20*time.Millisecond,
		"goroutines back to baseline %d (had %d)", base, after)
	t.Logf("goroutines: base %d, after close %d, back to baseline after %v", base, after, time.Since(lingerStart).Round(time.Millisecond))
}
