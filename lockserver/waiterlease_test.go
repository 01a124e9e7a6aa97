package lockserver

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestWaiterLeaseFind(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name     string
		live     []time.Time // low of each live lease
		deadline time.Time
		minSecs  int64
		wantMine bool
		wantLow  time.Time // of the lease returned
		wantSecs int64     // when mine
	}{
		{name: "none: grant, ending within the slack after the deadline", deadline: ms(1300), minSecs: 1, wantMine: true, wantLow: ms(2000), wantSecs: 2},
		{name: "less than whole seconds left: over half a second after", deadline: ms(1990), minSecs: 1, wantMine: true, wantLow: ms(3000), wantSecs: 3},
		{name: "shared: ends after the deadline, within the slack", live: []time.Time{ms(2000)}, deadline: ms(1300), wantLow: ms(2000)},
		{name: "ends at the deadline", live: []time.Time{ms(1300)}, deadline: ms(1300), wantLow: ms(1300)},
		{name: "ends before the deadline", live: []time.Time{ms(1299)}, deadline: ms(1300), minSecs: 1, wantMine: true, wantLow: ms(2000), wantSecs: 2},
		{name: "ends too long after", live: []time.Time{ms(2801)}, deadline: ms(1300), minSecs: 1, wantMine: true, wantLow: ms(2000), wantSecs: 2},
		{name: "etcd's minimum TTL wins", deadline: ms(200), minSecs: 2, wantMine: true, wantLow: ms(2000), wantSecs: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p waiterLeases
			for _, low := range tt.live {
				p.live = append(p.live, &waiterLease{low: low})
			}
			p.live = append(p.live, &waiterLease{low: ms(-1)}) // expired: dropped
			got, mine := p.find(tt.deadline, t0, tt.minSecs)
			assert.Equal(t, tt.wantMine, mine)
			assert.Equal(t, tt.wantLow, got.low)
			if mine {
				assert.Equal(t, tt.wantSecs, got.secs)
			}
			for _, w := range p.live {
				assert.False(t, w.low.Before(t0), "an expired lease is dropped")
			}
		})
	}
}

// TestWaitersShareWaiterLeases: blocking acquires queued one after another
// by one server use a handful of waiter leases, not one each.
func TestWaitersShareWaiterLeases(t *testing.T) {
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
	t.Logf("%d waiters on %d waiter leases; %d lease grants", n, len(leases), s.Stats().LeaseGrants-grants)
	assert.Less(t, len(leases), n, "waiters share waiter leases")
	require.NoError(t, c.Release(ctx, "share", holder.LockToken))
	for range n {
		require.NoError(t, <-done)
	}
}
