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
	got := m.links([]string{"a", "b", "c"})
	want := []Link{
		{From: "a", To: "b", Cut: true}, {From: "a", To: "c"},
		{From: "b", To: "a", Cut: true}, {From: "b", To: "c", Cut: true},
		{From: "c", To: "a"}, {From: "c", To: "b", Cut: true},
	}
	assert.Equal(t, want, got)
}

func TestIsolateFollowerMinority(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Config{})
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

	for i := range 10 {
		put(t, majority, fmt.Sprintf("/maj/%d", i), "x")
	}
	frozen := statusOf(t, c, isolated).CommitIndex
	for i := 10; i < 20; i++ {
		put(t, majority, fmt.Sprintf("/maj/%d", i), "x")
	}
	assert.Equal(t, frozen, statusOf(t, c, isolated).CommitIndex, "isolated commit index stops")
	assert.Less(t, frozen, statusOf(t, c, leader).CommitIndex)
	got, ok := c.Leader()
	assert.True(t, ok)
	assert.Equal(t, leader, got, "majority keeps its leader")

	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err := only.Put(ctx, "/minority", "x")
	require.Error(t, err, "write via the isolated member cannot commit")
	assert.True(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrTimeout),
		"the write times out (client deadline or etcd's own request timeout), got %v", err)
	require.Eventually(t, func() bool {
		return statusOf(t, c, isolated).Role == RoleCandidate
	}, 5*time.Second, 5*time.Millisecond, "isolated member loses its leader")

	start := time.Now()
	require.NoError(t, c.Heal())
	require.Eventually(t, func() bool {
		return statusOf(t, c, isolated).CommitIndex == statusOf(t, c, leader).CommitIndex
	}, 5*time.Second, 5*time.Millisecond, "caught up after heal")
	t.Logf("isolated follower caught up %v after Heal", time.Since(start).Round(time.Millisecond))
	require.Eventually(t, func() bool {
		v, ok := serializableGet(t, only, "/maj/19")
		return ok && v == "x"
	}, 5*time.Second, 5*time.Millisecond, "key readable on the healed member")
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
	}, 5*time.Second, 5*time.Millisecond, "new leader among the other two")
	t.Logf("isolated leader: new leader after %v", time.Since(start).Round(time.Millisecond))
	assert.Contains(t, others(c, old), newLeader)
	require.Eventually(t, func() bool {
		return !statusOf(t, c, old).Leader
	}, 5*time.Second, 5*time.Millisecond, "old leader steps down (CheckQuorum)")
	t.Logf("isolated leader: stepped down after %v", time.Since(start).Round(time.Millisecond))

	require.NoError(t, c.Heal())
	require.Eventually(t, func() bool {
		for _, s := range c.Status() {
			if s.LeaderID != statusOf(t, c, newLeader).ID {
				return false
			}
		}
		return true
	}, 5*time.Second, 5*time.Millisecond, "all agree after heal")
}

func TestPartitionAndCutsSurviveRestart(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Config{})
	leader := mustLeader(t, c)
	rest := others(c, leader)
	require.ErrorIs(t, c.Partition([]string{leader, rest[0]}, []string{rest[0], rest[1]}), ErrInvalidLink)
	require.ErrorIs(t, c.Cut(leader, leader), ErrInvalidLink)
	require.ErrorIs(t, c.Partition([]string{"etcd-9"}), ErrUnknownMember)

	// rest[1] is in no group: isolated.
	require.NoError(t, c.Partition([]string{leader, rest[0]}))
	for _, l := range c.Links() {
		assert.Equal(t, l.From == rest[1] || l.To == rest[1], l.Cut, "%+v", l)
	}
	// Keep only the victim's own side cut: only the victim's transport drops
	// anything, so the restarted member must re-apply its cuts.
	victim := rest[1]
	require.NoError(t, c.Heal())
	require.NoError(t, c.Cut(victim, leader))
	require.NoError(t, c.Cut(victim, rest[0]))
	put(t, clientFor(t, c, leader, rest[0]), "/during", "1")
	require.NoError(t, c.Crash(victim))
	put(t, clientFor(t, c, leader, rest[0]), "/while-down", "1")
	waitStopped(t, c, victim) // so that the short ctx below only bounds readiness

	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	err := c.Restart(ctx, victim)
	require.ErrorIs(t, err, context.DeadlineExceeded, "cuts re-applied: cannot publish itself without quorum")
	st := statusOf(t, c, victim)
	assert.True(t, st.Up, "keeps running although not ready")
	assert.Less(t, st.CommitIndex, statusOf(t, c, leader).CommitIndex, "still cut off after restart")
	assert.Equal(t, RoleCandidate, st.Role)
	cut := 0
	for _, l := range c.Links() {
		if l.Cut {
			cut++
		}
	}
	assert.Equal(t, 2, cut, "link state unchanged by crash/restart")

	require.NoError(t, c.Heal())
	require.Eventually(t, func() bool {
		return statusOf(t, c, victim).AppliedIndex == statusOf(t, c, leader).AppliedIndex
	}, 5*time.Second, 5*time.Millisecond, "joins after heal")
	v, ok := serializableGet(t, clientFor(t, c, victim), "/while-down")
	assert.True(t, ok)
	assert.Equal(t, "1", v)
}

// TestOneWayCutSilencesBothDirections pins down what Cut(from, to) really does
// with etcd's stream transport: `from` drops what it sends to `to` AND what
// `to` streams to it, so either one-way cut separates the pair. In a
// two-member cluster the leader then steps down (CheckQuorum: it no longer
// hears the follower's responses) whichever side the cut is on.
func TestOneWayCutSilencesBothDirections(t *testing.T) {
	t.Parallel()
	for _, side := range []string{"on the leader", "on the follower"} {
		t.Run(side, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, Config{Members: 2})
			leader := mustLeader(t, c)
			follower := others(c, leader)[0]
			from, to := leader, follower
			if side == "on the follower" {
				from, to = follower, leader
			}
			require.NoError(t, c.Cut(from, to))
			assert.Equal(t, []Link{
				{From: from, To: to, Cut: true}, {From: to, To: from},
			}, sortLinks(c.Links(), from))

			start := time.Now()
			require.Eventually(t, func() bool {
				return statusOf(t, c, leader).Role != RoleLeader && statusOf(t, c, follower).Role != RoleFollower
			}, 5*time.Second, 5*time.Millisecond, "leader steps down: it hears nothing from the follower either")
			t.Logf("one-way cut %s: leader stepped down after %v", side, time.Since(start).Round(time.Millisecond))
			_, ok := c.Leader()
			assert.False(t, ok)

			require.NoError(t, c.Heal())
			mustLeader(t, c)
		})
	}
}

// sortLinks puts the links starting at first first.
func sortLinks(ls []Link, first string) []Link {
	if len(ls) == 2 && ls[0].From != first {
		ls[0], ls[1] = ls[1], ls[0]
	}
	return ls
}
