package cluster

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStartOneLeaderPutGetClose(t *testing.T) {
	t.Parallel()
	c, err := New(Config{UnsafeNoFsync: true})
	require.NoError(t, err)
	require.NoError(t, c.Start(t.Context()))
	require.ErrorIs(t, c.Start(t.Context()), ErrStarted)

	assert.Equal(t, []string{"etcd-1", "etcd-2", "etcd-3"}, c.Names())
	leader := mustLeader(t, c)
	// A member may learn of the leader a moment after a quorum agreed.
	require.Eventually(t, func() bool {
		var roles []string
		for _, s := range c.Status() {
			if s.Name == leader {
				roles = append(roles, s.Role)
			} else if s.Role != RoleFollower {
				return false
			}
		}
		return len(roles) == 1 && roles[0] == RoleLeader
	}, 10*time.Second, 5*time.Millisecond, "one leader (%s), the others follow it", leader)

	cli := newClient(t, c.ClientURLs()...)
	put(t, cli, "/k", "v")
	for _, name := range c.Names() {
		requireValue(t, clientFor(t, c, name), "/k", "v")
	}

	var urls []string
	for _, s := range c.Status() {
		urls = append(urls, s.ClientURL, s.PeerURL)
	}
	dir, err := c.DataDir("etcd-1")
	require.NoError(t, err)
	require.DirExists(t, dir)

	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close is idempotent")
	for _, u := range urls {
		requireFree(t, u)
	}
	assert.NoDirExists(t, dir)
	_, err = os.Stat(dir + "/..")
	assert.True(t, os.IsNotExist(err), "own temp root removed")
	assert.ErrorIs(t, c.Crash("etcd-1"), ErrClosed)
	assert.ErrorIs(t, c.Start(t.Context()), ErrClosed)
	assert.ErrorIs(t, c.Heal(), ErrClosed)
}

func TestLeaderCrashFailoverAndRejoin(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Config{})
	old := mustLeader(t, c)
	cli := newClient(t, c.ClientURLs()...)
	put(t, cli, "/before", "1")

	start := time.Now()
	require.NoError(t, c.Crash(old))
	crashed := time.Since(start)
	require.ErrorIs(t, c.Crash(old), ErrMemberDown)
	assert.Equal(t, RoleDown, statusOf(t, c, old).Role)
	assert.False(t, statusOf(t, c, old).Up)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	newLeader, err := c.WaitLeader(ctx)
	require.NoError(t, err)
	elected := time.Since(start)
	assert.NotEqual(t, old, newLeader)
	_, err = cli.Put(ctx, "/after", "2")
	require.NoError(t, err, "the survivors accept writes")
	t.Logf("leader crash: HardStop+Close %v, new leader after %v, write ok after %v",
		crashed.Round(time.Millisecond), elected.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	require.ErrorIs(t, c.Restart(t.Context(), newLeader), ErrMemberUp)
	start = time.Now()
	require.NoError(t, c.Restart(t.Context(), old))
	t.Logf("restart old leader: ready after %v", time.Since(start).Round(time.Millisecond))
	require.Eventually(t, func() bool {
		l := statusOf(t, c, newLeader)
		o := statusOf(t, c, old)
		return o.Up && o.Role == RoleFollower && o.AppliedIndex >= l.AppliedIndex
	}, 10*time.Second, 5*time.Millisecond, "restarted member catches up")
	t.Logf("restart old leader: caught up after %v", time.Since(start).Round(time.Millisecond))
	requireValue(t, clientFor(t, c, old), "/after", "2")
}

func TestCrashRestartSameMemberRepeatedly(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Config{})
	victim := others(c, mustLeader(t, c))[0]
	url, err := c.ClientURL(victim)
	require.NoError(t, err)
	cli := newClient(t, c.ClientURLs()...)
	only := clientFor(t, c, victim)

	for i := range 5 {
		require.NoError(t, c.Crash(victim))
		put(t, cli, fmt.Sprintf("/round/%d", i), "while-down")
		start := time.Now()
		require.NoError(t, c.Restart(t.Context(), victim))
		t.Logf("round %d: restart ready in %v", i, time.Since(start).Round(time.Millisecond))
		got, err := c.ClientURL(victim)
		require.NoError(t, err)
		require.Equal(t, url, got, "client URL survives restart")
		for j := 0; j <= i; j++ {
			requireValue(t, only, fmt.Sprintf("/round/%d", j), "while-down")
		}
	}
	mustLeader(t, c)
}

func TestRestartRefusesEmptyDataDir(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Config{Members: 1})
	require.NoError(t, c.Crash("etcd-1"))
	dir, err := c.DataDir("etcd-1")
	require.NoError(t, err)
	require.NoError(t, os.RemoveAll(dir))
	require.ErrorIs(t, c.Restart(t.Context(), "etcd-1"), ErrNoData)
}

func TestUnknownMember(t *testing.T) {
	t.Parallel()
	c, err := New(Config{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	require.ErrorIs(t, c.Crash("etcd-1"), ErrNotStarted)
	require.ErrorIs(t, c.Cut("etcd-1", "etcd-2"), ErrNotStarted)
	_, err = c.ClientURL("etcd-9")
	require.ErrorIs(t, err, ErrUnknownMember)
	require.ErrorIs(t, c.Crash("nope"), ErrUnknownMember)
	require.ErrorIs(t, c.Restart(t.Context(), "nope"), ErrUnknownMember)
	_, ok := c.Leader()
	require.False(t, ok, "no leader before Start")
	for _, s := range c.Status() {
		assert.Equal(t, RoleDown, s.Role)
	}
}
