package lockserver

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestClaimLeaseFind(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	const dead = clientv3.LeaseID(7)
	alive := func(id clientv3.LeaseID) bool { return id != dead }
	type live struct {
		low time.Time
		id  clientv3.LeaseID
	}
	tests := []struct {
		name     string
		live     []live
		deadline time.Time
		wantMine bool
		wantLow  time.Time // of the lease returned
	}{
		{name: "none: grant one, kept alive until the slack after the deadline", deadline: ms(1300), wantMine: true, wantLow: ms(2800)},
		{name: "shared: kept alive past the deadline, within the slack", live: []live{{ms(2000), 1}}, deadline: ms(1300), wantLow: ms(2000)},
		{name: "kept alive until the deadline", live: []live{{ms(1300), 1}}, deadline: ms(1300), wantLow: ms(1300)},
		{name: "ends before the deadline", live: []live{{ms(1299), 1}}, deadline: ms(1300), wantMine: true, wantLow: ms(2800)},
		{name: "ends too long after", live: []live{{ms(2801), 1}}, deadline: ms(1300), wantMine: true, wantLow: ms(2800)},
		{name: "a lease the keeper no longer keeps alive is not shared", live: []live{{ms(2000), dead}}, deadline: ms(1300), wantMine: true, wantLow: ms(2800)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p claimLeases
			for _, l := range tt.live {
				c := &claimLease{low: l.low, ready: make(chan struct{}), l: lease{id: l.id}}
				close(c.ready)
				p.live = append(p.live, c)
			}
			p.live = append(p.live, &claimLease{low: ms(-1)}) // past its keep-alive: dropped
			got, mine := p.find(tt.deadline, t0, alive)
			assert.Equal(t, tt.wantMine, mine)
			assert.Equal(t, tt.wantLow, got.low)
			for _, c := range p.live {
				assert.False(t, c.low.Before(t0), "a lease past its keep-alive is dropped")
				assert.NotEqual(t, dead, c.l.id, "a dead lease is dropped")
			}
		})
	}
}

// TestWaitersShareClaimLeases: blocking acquires queued one after another
// by one server use a handful of claim leases, not one each.
func TestWaitersShareClaimLeases(t *testing.T) {
	te := startEtcd(t)
	s, c := startServer(t, te, nil)
	ctx := t.Context()
	holder, err := c.Acquire(ctx, "share", 30*time.Second, 0)
	require.NoError(t, err)
	grants := s.Stats().LeaseGrants
	const n = 8
	done := make(chan error, n)
	for i := range n {
		w := &Client{BaseURL: c.BaseURL, ClientID: fmt.Sprint("w", i)}
		go func() {
			g, err := w.Acquire(ctx, "share", 30*time.Second, 10*time.Second)
			if err == nil {
				err = w.Release(ctx, "share", g.LockToken)
			}
			done <- err
		}()
	}
	var leases map[clientv3.LeaseID]bool
	require.Eventually(t, func() bool {
		resp, err := te.cli.Get(ctx, waitersPrefix("share"), clientv3.WithPrefix())
		require.NoError(t, err)
		leases = map[clientv3.LeaseID]bool{}
		for _, kv := range resp.Kvs {
			leases[clientv3.LeaseID(kv.Lease)] = true
		}
		return len(resp.Kvs) == n
	}, 10*time.Second, 10*time.Millisecond, "all queued")
	t.Logf("%d waiters on %d claim leases; %d lease grants", n, len(leases), s.Stats().LeaseGrants-grants)
	assert.Less(t, len(leases), n, "waiters share claim leases")
	require.NoError(t, c.Release(ctx, "share", holder.LockToken))
	for range n {
		require.NoError(t, <-done)
	}
}
