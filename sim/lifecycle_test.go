package sim

import (
	"context"
	"errors"
	"net"
	"net/url"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/lockserver"
)

// TestStartStopCyclesLeakNothing boots and closes whole sandboxes with a
// running workload several times: every port is free afterwards and the
// goroutine count returns to where it started (etcd's peer connections
// linger for up to ~12 s after a member stops, so the count is polled).
func TestStartStopCyclesLeakNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	for i := range 3 {
		sb, err := New(Config{Workload: Workload{Hold: time.Millisecond, Think: time.Millisecond}})
		require.NoError(t, err)
		require.NoError(t, sb.Start(t.Context()), "cycle %d", i)
		sb.StartWorkload(t.Context())
		require.Eventually(t, func() bool { return sb.Status().Cycles >= 5 }, 15*time.Second, 10*time.Millisecond)
		addrs := sb.Addresses()
		require.NoError(t, sb.Close())
		for _, u := range append(append([]string{addrs.Balancer}, values(addrs.LockServers)...), values(addrs.Etcd)...) {
			pu, err := url.Parse(u)
			require.NoError(t, err)
			l, err := net.Listen("tcp", pu.Host)
			require.NoError(t, err, "port of %s still taken after Close", u)
			l.Close()
		}
	}
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= before+5 }, 30*time.Second, 100*time.Millisecond,
		"goroutines leaked: %d before, %d after", before, runtime.NumGoroutine())
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestNoQuorumAnswersFast: with two of three members down, an acquire
// through the balancer (which by then has marked every lock server down) and
// directly on a lock server answers (about 2 s, its etcd timeout) with 503 (no effect) or
// outcome_unknown — it never hangs.
func TestNoQuorumAnswersFast(t *testing.T) {
	sb := start(t, Config{Workload: Workload{Disabled: true}})
	c := apiClient(sb, "client-A")
	_, err := c.Acquire(t.Context(), "q", 5*time.Second, 0)
	require.NoError(t, err)
	crashed := 0
	for _, name := range sb.Cluster().Names() {
		if crashed < 2 {
			require.NoError(t, sb.Crash(name))
			crashed++
		}
	}
	direct := &lockserver.Client{BaseURL: sb.Addresses().LockServers["lockserver-1"], ClientID: "client-B"}
	for i, c := range []*lockserver.Client{c, direct, c, direct} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		began := time.Now()
		_, err := c.Acquire(ctx, "q2", 5*time.Second, 1*time.Second)
		cancel()
		took := time.Since(began)
		t.Logf("attempt %d: %v after %v", i, err, took)
		// It answers (within the lock server's etcd timeout of 2 s on a quiet
		// machine): well before the client's own 10 s deadline, which is
		// what a hang would run into. Generous: a busy machine is slow.
		assert.Less(t, took, 8*time.Second, "an acquire without quorum answers; it does not hang")
		assert.True(t, errors.Is(err, lockserver.ErrUnavailable) || errors.Is(err, lockserver.ErrOutcomeUnknown),
			"no quorum: 503 or outcome_unknown, got %v", err)
	}
}
