package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func TestPartitionMatrix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		n       int
		groups  [][]int
		want    [][]bool
		wantErr error
	}{
		{
			name:   "two groups cut both ways",
			n:      3,
			groups: [][]int{{0}, {1, 2}},
			want:   [][]bool{{false, true, true}, {true, false, false}, {true, false, false}},
		},
		{
			name:   "member in no group is isolated",
			n:      3,
			groups: [][]int{{0, 1}},
			want:   [][]bool{{false, false, true}, {false, false, true}, {true, true, false}},
		},
		{
			name:   "one group heals all",
			n:      3,
			groups: [][]int{{0, 1, 2}},
			want:   [][]bool{{false, false, false}, {false, false, false}, {false, false, false}},
		},
		{
			name:   "no groups isolates everyone",
			n:      2,
			groups: nil,
			want:   [][]bool{{false, true}, {true, false}},
		},
		{name: "member in two groups", n: 3, groups: [][]int{{0, 1}, {1, 2}}, wantErr: ErrInvalidLink},
		{name: "index out of range", n: 3, groups: [][]int{{3}}, wantErr: ErrUnknownMember},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := partitionMatrix(tt.n, tt.groups)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, [][]bool(got))
		})
	}
}

func TestLinksAndIsolate(t *testing.T) {
	t.Parallel()
	m := newLinkMatrix(3)
	m.isolate(1)
	nw := newNetwork(3, 1)
	nw.setCuts(m)
	got := nw.links([]string{"a", "b", "c"})
	want := []Link{
		{From: "a", To: "b", Cut: true}, {From: "a", To: "c"},
		{From: "b", To: "a", Cut: true}, {From: "b", To: "c", Cut: true},
		{From: "c", To: "a"}, {From: "c", To: "b", Cut: true},
	}
	assert.Equal(t, want, got)
}

func TestIsolateFollowerMinority(t *testing.T) {
	t.Parallel()
	c := startCluster(t, steady)
	leader := mustLeader(t, c)
	rest := others(c, leader)
	isolated, peer := rest[0], rest[1]
	majority := clientFor(t, c, leader, peer)
	only := clientFor(t, c, isolated)
	put(t, only, "/warmup", "1") // connect while healthy

	require.NoError(t, c.Isolate(isolated))
	cutCount := 0
	for _, l := range c.Links() {
		if l.Cut {
			cutCount++
			assert.True(t, l.From == isolated || l.To == isolated, "%+v", l)
		}
	}
	assert.Equal(t, 4, cutCount)

	// Writes keep committing in the majority (whoever leads it: on a busy
	// machine an unrelated election may happen), and the isolated member
	// sees none of them: once it has lost its leader it cannot learn of
	// a commit.
	require.Eventually(t, func() bool {
		return statusOf(t, c, isolated).Role == RoleCandidate
	}, 10*time.Second, 5*time.Millisecond, "isolated member loses its leader")
	frozen := statusOf(t, c, isolated).CommitIndex
	for i := range 20 {
		put(t, majority, fmt.Sprintf("/maj/%d", i), "x")
	}
	assert.Equal(t, frozen, statusOf(t, c, isolated).CommitIndex, "isolated commit index stops")
	assert.Less(t, frozen, statusOf(t, c, peer).CommitIndex)
	got, err := c.WaitLeader(t.Context())
	require.NoError(t, err)
	assert.NotEqual(t, isolated, got, "the majority has the leader")

	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err = only.Put(ctx, "/minority", "x")
	require.Error(t, err, "write via the isolated member cannot commit")
	assert.True(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrTimeout),
		"the write times out (client deadline or etcd's own request timeout), got %v", err)

	start := time.Now()
	require.NoError(t, c.Heal())
	require.Eventually(t, func() bool {
		return statusOf(t, c, isolated).CommitIndex >= statusOf(t, c, peer).CommitIndex
	}, 10*time.Second, 5*time.Millisecond, "caught up after heal")
	t.Logf("isolated follower caught up %v after Heal", time.Since(start).Round(time.Millisecond))
	requireValue(t, only, "/maj/19", "x")
	for _, l := range c.Links() {
		assert.False(t, l.Cut, "%+v", l)
	}
}

func TestIsolateLeader(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Config{})
	old := mustLeader(t, c)
	start := time.Now()
	require.NoError(t, c.Isolate(old))

	var newLeader string
	require.Eventually(t, func() bool {
		name, ok := c.Leader()
		newLeader = name
		return ok && name != old
	}, 10*time.Second, 5*time.Millisecond, "new leader among the other two")
	t.Logf("isolated leader: new leader after %v", time.Since(start).Round(time.Millisecond))
	assert.Contains(t, others(c, old), newLeader)
	require.Eventually(t, func() bool {
		return statusOf(t, c, old).Role == RoleCandidate
	}, 10*time.Second, 5*time.Millisecond, "old leader steps down (CheckQuorum) and hears no leader")
	t.Logf("isolated leader: stepped down after %v", time.Since(start).Round(time.Millisecond))

	require.NoError(t, c.Heal())
	require.Eventually(t, func() bool {
		st := c.Status()
		for _, s := range st {
			if s.LeaderID == 0 || s.LeaderID != st[0].LeaderID {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "all agree after heal")
}

// TestCutsSurviveRestart: cuts belong to the cluster, so a member restarted
// behind them is cut off from its first byte on: it cannot even publish
// itself (which takes a commit) until the links are mended.
func TestCutsSurviveRestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cut  func(c *Cluster, victim string) error
		// wantRole is what the restarted victim settles on: isolated it hears
		// no leader; with only its own messages cut it still hears the leader
		// (and may learn of commits from the entries it is sent).
		wantRole   string
		wantFrozen bool
	}{
		{name: "isolated", cut: (*Cluster).Isolate, wantRole: RoleCandidate, wantFrozen: true},
		{name: "its messages out cut", cut: func(c *Cluster, victim string) error {
			for _, o := range others(c, victim) {
				if err := c.Cut(victim, o); err != nil {
					return err
				}
			}
			return nil
		}, wantRole: RoleFollower},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, steady)
			leader := mustLeader(t, c)
			rest := others(c, leader)
			require.ErrorIs(t, c.Partition([]string{leader, rest[0]}, []string{rest[0], rest[1]}), ErrInvalidLink)
			require.ErrorIs(t, c.Cut(leader, leader), ErrInvalidLink)
			require.ErrorIs(t, c.Partition([]string{"etcd-9"}), ErrUnknownMember)

			victim := rest[1]
			require.NoError(t, tt.cut(c, victim))
			before := c.Links()
			majority := clientFor(t, c, leader, rest[0])
			put(t, majority, "/during", "1")
			require.NoError(t, c.Crash(victim))
			put(t, majority, "/while-down", "1")
			waitStopped(t, c, victim) // so that the short ctx below only bounds readiness

			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			err := c.Restart(ctx, victim)
			require.ErrorIs(t, err, context.DeadlineExceeded, "cut off: cannot publish itself without a commit")
			assert.True(t, statusOf(t, c, victim).Up, "keeps running although not ready")
			require.Eventually(t, func() bool {
				return statusOf(t, c, victim).Role == tt.wantRole
			}, 10*time.Second, 5*time.Millisecond, "restarted behind its cuts")
			if tt.wantFrozen {
				for range 5 {
					put(t, majority, "/after-restart", "1")
				}
				assert.Less(t, statusOf(t, c, victim).CommitIndex, statusOf(t, c, rest[0]).CommitIndex, "still cut off after restart")
			}
			assert.Equal(t, before, c.Links(), "link state unchanged by crash/restart")

			require.NoError(t, c.Heal())
			require.Eventually(t, func() bool {
				return statusOf(t, c, victim).AppliedIndex >= statusOf(t, c, rest[0]).AppliedIndex
			}, 10*time.Second, 5*time.Millisecond, "joins after heal")
			requireValue(t, clientFor(t, c, victim), "/while-down", "1")
		})
	}
}
