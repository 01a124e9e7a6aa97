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

func TestSplitDelay(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		name   string
		in     linkDelay
		wantTx linkDelay
		wantRx linkDelay
	}{
		{name: "zero removes", in: linkDelay{}},
		{name: "jitter alone is no delay", in: linkDelay{Jitter: 5 * ms}},
		{name: "all on the member's answers", in: linkDelay{Latency: 100 * ms, Jitter: 10 * ms},
			wantRx: linkDelay{100 * ms, 10 * ms}},
		{name: "jitter capped at latency", in: linkDelay{Latency: 10 * ms, Jitter: time.Second},
			wantRx: linkDelay{10 * ms, 10 * ms}},
		{name: "negative jitter is none", in: linkDelay{Latency: 10 * ms, Jitter: -ms},
			wantRx: linkDelay{Latency: 10 * ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotTx, gotRx := splitDelay(tt.in)
			assert.Equal(t, tt.wantTx, gotTx)
			assert.Equal(t, tt.wantRx, gotRx)
		})
	}
}

func TestSetDelayNeedsProxies(t *testing.T) {
	t.Parallel()
	c, err := New(Config{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	require.ErrorIs(t, c.SetDelay("etcd-1", time.Millisecond, 0), ErrNoProxies)
	require.ErrorIs(t, c.SetDelay("etcd-9", time.Millisecond, 0), ErrUnknownMember)
	require.ErrorIs(t, c.SetDelay("etcd-1", -time.Millisecond, 0), ErrInvalidLink)
	assert.Nil(t, c.Delays())

	p, err := New(Config{PeerProxies: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	require.ErrorIs(t, p.SetDelay("etcd-1", time.Millisecond, 0), ErrNotStarted)
	require.NoError(t, p.Close())
	require.ErrorIs(t, p.SetDelay("etcd-1", time.Millisecond, 0), ErrClosed)
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

func p50(ds []time.Duration) time.Duration { return ds[len(ds)/2] }

// TestPeerDelaySlowsCommit: with both followers delayed, every commit needs
// a round trip into a delayed member, so a write through the leader gains at
// least the delay; removing the delay brings it back.
func TestPeerDelaySlowsCommit(t *testing.T) {
	t.Parallel()
	const delay = 60 * time.Millisecond
	// A delay near the election timeout makes followers or the leader time out.
	c := startCluster(t, Config{PeerProxies: true, ElectionMs: 500})
	leader := mustLeader(t, c)
	cli := clientFor(t, c, leader)
	put(t, cli, "/warmup", "1")
	base := p50(putLatencies(t, cli, 20))

	for _, f := range others(c, leader) {
		require.NoError(t, c.SetDelay(f, delay, 0))
	}
	want := map[string]time.Duration{leader: 0}
	for _, f := range others(c, leader) {
		want[f] = delay
	}
	assert.Equal(t, want, c.Delays())
	slow := putLatencies(t, cli, 7)
	t.Logf("write p50: %v without delay, %v with %v on both followers (min %v, max %v)",
		base, p50(slow), delay, slow[0], slow[len(slow)-1])
	assert.GreaterOrEqual(t, p50(slow), base+delay, "commit waits for a delayed round trip")

	for _, f := range others(c, leader) {
		require.NoError(t, c.SetDelay(f, 0, 0))
	}
	fast := p50(putLatencies(t, cli, 20))
	t.Logf("write p50 after removing the delay: %v", fast)
	assert.Less(t, fast, base+delay/2, "delay removed")
	for name, d := range c.Delays() {
		assert.Zero(t, d, name)
	}
	l, ok := c.Leader()
	assert.True(t, ok)
	assert.Equal(t, leader, l, "no election caused by the delay")
}

// TestPeerProxiesCrashRestartClose: the proxies front the advertised peer
// URLs on the host only, keep a delay across a crash and restart of their
// member, which rejoins through them, and Close frees every port.
func TestPeerProxiesCrashRestartClose(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Config{PeerProxies: true})
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
		assert.Equal(t, httpURL("127.0.0.1", ports[3*i]), s.PeerURL, "Status shows the advertised (proxy) URL")
		if got, ok := listenAddrs(t, ports[3*i]); ok {
			assert.Equal(t, []string{"0100007F"}, got, "proxy of %s listens on 127.0.0.1 only", s.Name)
		}
	}

	require.NoError(t, c.SetDelay(victim, 5*time.Millisecond, time.Millisecond))
	cli := clientFor(t, c, others(c, victim)...)
	require.NoError(t, c.Crash(victim))
	put(t, cli, "/while-down", "1")
	start := time.Now()
	require.NoError(t, c.Restart(t.Context(), victim))
	require.Eventually(t, func() bool {
		return statusOf(t, c, victim).AppliedIndex == statusOf(t, c, leader).AppliedIndex
	}, 5*time.Second, 5*time.Millisecond, "restarted member catches up through the proxies")
	t.Logf("restart behind proxies: caught up after %v", time.Since(start).Round(time.Millisecond))
	v, ok := serializableGet(t, clientFor(t, c, victim), "/while-down")
	assert.True(t, ok)
	assert.Equal(t, "1", v)
	assert.Equal(t, 5*time.Millisecond, c.Delays()[victim], "delay survives crash and restart")

	start = time.Now()
	require.NoError(t, c.Close())
	t.Logf("close with proxies: %v", time.Since(start).Round(time.Millisecond))
	for _, p := range ports {
		requireFree(t, httpURL("127.0.0.1", p))
	}
	require.ErrorIs(t, c.SetDelay(victim, 0, 0), ErrClosed)
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

// TestPeerProxyOverhead measures write latency through the leader with and
// without the (undelayed) proxies. Not parallel: it measures.
func TestPeerProxyOverhead(t *testing.T) {
	got := map[bool]time.Duration{}
	for _, proxies := range []bool{false, true} {
		c := startCluster(t, Config{PeerProxies: proxies})
		cli := clientFor(t, c, mustLeader(t, c))
		put(t, cli, "/warmup", "1")
		l := putLatencies(t, cli, 100)
		got[proxies] = p50(l)
		t.Logf("PeerProxies=%v: write p50 %v, p90 %v", proxies, p50(l), l[len(l)*9/10])
		require.NoError(t, cli.Close())
		require.NoError(t, c.Close())
	}
	t.Logf("proxy overhead on write p50: %v", got[true]-got[false])
	assert.Less(t, got[true], 2*got[false]+2*time.Millisecond, "undelayed proxies add little")
}
