package cluster

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/client/pkg/v3/types"
)

// receivedBytes reads etcd_network_peer_received_bytes_total{From=id of
// from} from member at's /metrics: the bytes of Raft messages from `from`
// that etcd's transport received and decoded. The members of one process
// share Prometheus' default registry, so the counter sums what every member
// received from `from`; with two members that is exactly the link from ->
// the other.
func receivedBytes(t *testing.T, c *Cluster, at, from string) float64 {
	t.Helper()
	u, err := c.ClientURL(at)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u+"/metrics", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	prefix := `etcd_network_peer_received_bytes_total{From="` + types.ID(statusOf(t, c, from).ID).String() + `"} `
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	require.NoError(t, sc.Err())
	return 0
}

// requireSilentWhileOtherFlows waits for a window of at least a second in
// which the other direction (to -> from) delivered something while from ->
// to delivered nothing, measured by etcd's own counters. Bytes already on
// their way when the fault began may still arrive, hence the retries. A
// member sends to each peer several times a second in every Raft state
// (heartbeats and their answers, or campaigns every election timeout), so
// an open direction is never silent for a second: a fault that misses its
// direction, or hits both, fails here.
func requireSilentWhileOtherFlows(t *testing.T, c *Cluster, from, to string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		silent := receivedBytes(t, c, to, from)
		other := receivedBytes(t, c, from, to)
		start := time.Now()
		flowed := assert.Eventually(discard{}, func() bool {
			return time.Since(start) >= time.Second && receivedBytes(t, c, from, to) > other
		}, 20*time.Second, 20*time.Millisecond)
		require.True(t, flowed, "%s -> %s stopped too", to, from)
		if receivedBytes(t, c, to, from) == silent {
			return
		}
	}
	t.Fatalf("%s -> %s kept delivering", from, to)
}

// discard is an assert.TestingT that ignores failures.
type discard struct{}

func (discard) Errorf(string, ...any) {}

// TestOneWayFaultsHitOneDirection: per directed link, a cut (or a delay
// longer than the test) stops the Raft messages of that direction while
// those of the other keep arriving; mending brings them back. Two members,
// so that etcd's per-peer counters measure exactly one link each.
func TestOneWayFaultsHitOneDirection(t *testing.T) {
	t.Parallel()
	cut := func(c *Cluster, from, to string) error { return c.Cut(from, to) }
	mend := func(c *Cluster, from, to string) error { return c.Mend(from, to) }
	delay := func(c *Cluster, from, to string) error { return c.SetDelay(from, to, time.Hour, 0) }
	tests := []struct {
		name        string
		fromLeader  bool
		fault, undo func(c *Cluster, from, to string) error
	}{
		{name: "cut leader to follower", fromLeader: true, fault: cut, undo: mend},
		{name: "cut follower to leader", fault: cut, undo: mend},
		{name: "delay leader to follower", fromLeader: true, fault: delay},
		{name: "delay follower to leader", fault: delay},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, Config{Members: 2})
			leader := mustLeader(t, c)
			follower := others(c, leader)[0]
			from, to := follower, leader
			if tt.fromLeader {
				from, to = leader, follower
			}
			require.NoError(t, tt.fault(c, from, to))
			requireSilentWhileOtherFlows(t, c, from, to)
			if tt.undo == nil {
				return
			}
			before := receivedBytes(t, c, to, from)
			require.NoError(t, tt.undo(c, from, to))
			require.Eventually(t, func() bool {
				return receivedBytes(t, c, to, from) > before
			}, 10*time.Second, 20*time.Millisecond, "%s -> %s delivers again", from, to)
			mustLeader(t, c)
		})
	}
}

// steady is for tests whose premise is that the leader stays put unless a
// fault deposes it: with a 1 s election timeout a busy machine does not
// cause elections of its own.
var steady = Config{ElectionMs: 1000}

// TestOneWayCutRaftOutcomes pins down what a three-member cluster shows
// under one-way cuts (what the scenarios narrate). A member that cannot hear
// the leader loses it. A member that hears the leader but cannot answer it
// keeps following it, but nothing it proposes arrives. A leader that hears
// no one steps down and stays leaderless, as if isolated. A leader nobody
// hears is replaced, and then follows its successor, which it hears, without
// learning of any commit: nothing it answers arrives. (Unlike an isolated
// leader, which is left without a leader.)
func TestOneWayCutRaftOutcomes(t *testing.T) {
	t.Parallel()
	t.Run("follower cannot hear the leader", func(t *testing.T) {
		t.Parallel()
		c := startCluster(t, steady)
		leader := mustLeader(t, c)
		f := others(c, leader)[0]
		require.NoError(t, c.Cut(leader, f))
		require.Eventually(t, func() bool { return statusOf(t, c, f).Role == RoleCandidate },
			10*time.Second, 5*time.Millisecond, "the follower loses its leader")
		requireFrozenWhileOthersCommit(t, c, f)
	})
	t.Run("follower cannot answer the leader", func(t *testing.T) {
		t.Parallel()
		c := startCluster(t, steady)
		leader := mustLeader(t, c)
		f := others(c, leader)[0]
		viaF := clientFor(t, c, f)
		put(t, viaF, "/warmup", "1")
		require.NoError(t, c.Cut(f, leader))
		put(t, clientFor(t, c, others(c, f)...), "/moving", "1")
		require.Eventually(t, func() bool {
			st := statusOf(t, c, f)
			return st.Role == RoleFollower && st.LeaderID == statusOf(t, c, leader).ID
		}, 10*time.Second, 5*time.Millisecond, "it still hears the leader")
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := viaF.Put(ctx, "/via-f", "x")
		assert.Error(t, err, "its proposals never reach the leader")
	})
	t.Run("leader hears no one", func(t *testing.T) {
		t.Parallel()
		c := startCluster(t, steady)
		old := mustLeader(t, c)
		for _, f := range others(c, old) {
			require.NoError(t, c.Cut(f, old))
		}
		require.Eventually(t, func() bool {
			name, ok := c.Leader()
			return ok && name != old
		}, 10*time.Second, 5*time.Millisecond, "the followers elect a new leader")
		require.Eventually(t, func() bool { return statusOf(t, c, old).Role == RoleCandidate },
			10*time.Second, 5*time.Millisecond, "the old leader steps down (CheckQuorum) and hears no leader, the new one included")
		requireFrozenWhileOthersCommit(t, c, old)
	})
	t.Run("nobody hears the leader", func(t *testing.T) {
		t.Parallel()
		c := startCluster(t, steady)
		old := mustLeader(t, c)
		for _, f := range others(c, old) {
			require.NoError(t, c.Cut(old, f))
		}
		var newLeader string
		require.Eventually(t, func() bool {
			name, ok := c.Leader()
			newLeader = name
			return ok && name != old
		}, 10*time.Second, 5*time.Millisecond, "the followers elect a new leader")
		require.Eventually(t, func() bool {
			st := statusOf(t, c, old)
			return st.Role == RoleFollower && st.LeaderID == statusOf(t, c, newLeader).ID
		}, 10*time.Second, 5*time.Millisecond, "the old leader follows the new one, which it hears")
		requireFrozenWhileOthersCommit(t, c, old)
	})
}

// requireFrozenWhileOthersCommit: writes commit through the other members
// while member's commit index does not move.
func requireFrozenWhileOthersCommit(t *testing.T, c *Cluster, member string) {
	t.Helper()
	rest := others(c, member)
	cli := clientFor(t, c, rest...)
	put(t, cli, "/settle", "1") // a commit after the cut took effect
	frozen := statusOf(t, c, member).CommitIndex
	for range 10 {
		put(t, cli, "/moving", "1")
	}
	assert.Equal(t, frozen, statusOf(t, c, member).CommitIndex, "%s learns of no commit", member)
	assert.Less(t, frozen, statusOf(t, c, rest[0]).CommitIndex)
}

// TestCutStopsForwardedLeaseRenewals: a follower forwards lease renewals to
// the leader over peer HTTP, outside Raft. A cut of the follower's messages
// to the leader loses them too: the follower still knows the leader, but
// the renewal never arrives, so the lease runs down.
func TestCutStopsForwardedLeaseRenewals(t *testing.T) {
	t.Parallel()
	c := startCluster(t, steady)
	leader := mustLeader(t, c)
	f := others(c, leader)[0]
	atLeader := clientFor(t, c, leader)
	viaFollower := clientFor(t, c, f)
	const ttl = 30
	grant, err := atLeader.Grant(t.Context(), ttl)
	require.NoError(t, err)
	keepAlive := func(timeout time.Duration) (int64, error) {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		resp, err := viaFollower.KeepAliveOnce(ctx, grant.ID)
		if err != nil {
			return 0, err
		}
		return resp.TTL, nil
	}
	remaining := func() int64 {
		r, err := atLeader.TimeToLive(t.Context(), grant.ID)
		require.NoError(t, err)
		return r.TTL
	}
	_, err = keepAlive(10 * time.Second)
	require.NoError(t, err, "renewal through the follower before the cut")

	require.NoError(t, c.Cut(f, leader))
	require.Eventually(t, func() bool { return remaining() <= ttl-2 }, 10*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool {
		st := statusOf(t, c, f)
		return st.Role == RoleFollower && st.LeaderID == statusOf(t, c, leader).ID
	}, 10*time.Second, 5*time.Millisecond, "the follower still knows the leader, so it forwards")
	_, err = keepAlive(time.Second)
	require.Error(t, err, "the forwarded renewal is lost")
	assert.LessOrEqual(t, remaining(), int64(ttl-2), "the leader never renewed the lease")

	require.NoError(t, c.Mend(f, leader))
	var renewed int64
	require.Eventually(t, func() bool {
		renewed, err = keepAlive(2 * time.Second)
		return err == nil
	}, 20*time.Second, 10*time.Millisecond, "renewals arrive again after the mend")
	assert.Equal(t, int64(ttl), renewed, "renewed by the leader")
}
