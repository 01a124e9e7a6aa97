package cluster

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestSetDelayRejectsBadInput(t *testing.T) {
	t.Parallel()
	c, err := New(Config{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	require.ErrorIs(t, c.SetDelay("etcd-1", "etcd-2", time.Millisecond, 0), ErrNotStarted)
	require.ErrorIs(t, c.SetDelay("etcd-9", "etcd-2", time.Millisecond, 0), ErrUnknownMember)
	require.ErrorIs(t, c.SetDelay("etcd-1", "etcd-1", time.Millisecond, 0), ErrInvalidLink)
	require.ErrorIs(t, c.SetDelay("etcd-1", "etcd-2", -time.Millisecond, 0), ErrInvalidLink)
	require.ErrorIs(t, c.SetDelay("etcd-1", "etcd-2", time.Millisecond, -time.Millisecond), ErrInvalidLink)
	for _, l := range c.Links() {
		assert.Zero(t, l.Latency, "a refused delay changes nothing: %+v", l)
	}
	require.NoError(t, c.Close())
	require.ErrorIs(t, c.SetDelay("etcd-1", "etcd-2", time.Millisecond, 0), ErrClosed)
}

// putLatencies returns the sorted latencies of n sequential puts through cli.
func putLatencies(t *testing.T, cli *clientv3.Client, n int) []time.Duration {
	t.Helper()
	out := make([]time.Duration, n)
	for i := range n {
		start := time.Now()
		put(t, cli, "/lat", strconv.Itoa(i))
		out[i] = time.Since(start)
	}
	slices.Sort(out)
	return out
}

// TestDelayOneWaySlowsEveryCommit: a commit needs an entry to travel from
// the leader to a follower and the follower's acknowledgement back. Delay
// either direction of both leader-follower links and no write through the
// leader can be faster than the delay. (That only the named direction is
// delayed is shown by TestOneWayFaultsHitOneDirection and the flow tests.)
func TestDelayOneWaySlowsEveryCommit(t *testing.T) {
	t.Parallel()
	const delay = 60 * time.Millisecond
	for _, dir := range []string{"leader to followers", "followers to leader"} {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			// A delay near the election timeout would trigger elections.
			c := startCluster(t, Config{ElectionMs: 1000})
			leader := mustLeader(t, c)
			cli := clientFor(t, c, leader)
			put(t, cli, "/warmup", "1")
			base := putLatencies(t, cli, 10)
			want := map[string]time.Duration{}
			for _, f := range others(c, leader) {
				from, to := leader, f
				if dir == "followers to leader" {
					from, to = f, leader
				}
				require.NoError(t, c.SetDelay(from, to, delay, 0))
				want[from+"->"+to] = delay
			}
			got := map[string]time.Duration{}
			for _, l := range c.Links() {
				if l.Latency > 0 {
					got[l.From+"->"+l.To] = l.Latency
				}
			}
			assert.Equal(t, want, got)

			slow := putLatencies(t, cli, 7)
			t.Logf("write p50 %v without delay, %v with %v on %s (min %v)", base[len(base)/2], slow[len(slow)/2], delay, dir, slow[0])
			assert.GreaterOrEqual(t, slow[0], delay, "every commit waits for a delayed message")

			require.NoError(t, c.Heal())
			for _, l := range c.Links() {
				assert.Zero(t, l.Latency, "Heal removes delays: %+v", l)
			}
		})
	}
}

// TestPeerProxiesCrashRestartClose: the proxies front the advertised peer
// URLs on the host only, keep their delays across a crash and restart of a
// member, which rejoins through them, and Close frees every port.
func TestPeerProxiesCrashRestartClose(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Config{})
	leader := mustLeader(t, c)
	victim := others(c, leader)[0]

	var ports []int
	c.mu.RLock()
	for _, m := range c.members {
		assert.NotEqual(t, m.peerPort, m.listenPort, "advertised peer port is the proxy's")
		ports = append(ports, m.peerPort, m.listenPort, m.clientPort)
	}
	c.mu.RUnlock()
	for i, s := range c.Status() {
		assert.Equal(t, "https://"+hostPort("127.0.0.1", ports[3*i]), s.PeerURL, "Status shows the advertised (proxy) URL")
		if got, ok := listenAddrs(t, ports[3*i]); ok {
			assert.Equal(t, []string{"0100007F"}, got, "proxy of %s listens on 127.0.0.1 only", s.Name)
		}
	}

	require.NoError(t, c.SetDelay(victim, leader, 5*time.Millisecond, time.Millisecond))
	require.NoError(t, c.SetDelay(leader, victim, 3*time.Millisecond, 0))
	before := c.Links()
	cli := clientFor(t, c, others(c, victim)...)
	require.NoError(t, c.Crash(victim))
	put(t, cli, "/while-down", "1")
	start := time.Now()
	require.NoError(t, c.Restart(t.Context(), victim))
	require.Eventually(t, func() bool {
		return statusOf(t, c, victim).AppliedIndex >= statusOf(t, c, leader).AppliedIndex
	}, 10*time.Second, 5*time.Millisecond, "restarted member catches up through the proxies")
	t.Logf("restart behind proxies: caught up after %v", time.Since(start).Round(time.Millisecond))
	requireValue(t, clientFor(t, c, victim), "/while-down", "1")
	assert.Equal(t, before, c.Links(), "delays survive crash and restart")

	start = time.Now()
	require.NoError(t, c.Close())
	t.Logf("close with proxies: %v", time.Since(start).Round(time.Millisecond))
	for _, p := range ports {
		requireFree(t, httpURL("127.0.0.1", p))
	}
	require.ErrorIs(t, c.SetDelay(victim, leader, 0, 0), ErrClosed)
}

// listenAddrs returns the hex local addresses (as in /proc/net/tcp*) of the
// sockets listening on port; ok is false where /proc/net is unavailable.
func listenAddrs(t *testing.T, port int) (addrs []string, ok bool) {
	t.Helper()
	hexPort := fmt.Sprintf("%04X", port)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			return nil, false
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			host, p, found := strings.Cut(fields[1], ":")
			if found && p == hexPort {
				addrs = append(addrs, host)
			}
		}
		require.NoError(t, fh.Close())
	}
	return addrs, true
}
