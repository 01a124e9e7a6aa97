package lockserver

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestLeasePool(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name   string
		max    int
		puts   []pooledLease // id and the time of the put (in deadline)
		ttl    int64         // TTL (s) of every put
		getTTL int64
		getAt  time.Time
		want   clientv3.LeaseID
		wantOK bool
	}{
		{name: "empty", max: 4, getTTL: 5, getAt: t0},
		{name: "last in first out", max: 4, ttl: 5, puts: []pooledLease{{1, t0}, {2, t0}}, getTTL: 5, getAt: t0, want: 2, wantOK: true},
		{name: "other TTL", max: 4, ttl: 5, puts: []pooledLease{{1, t0}}, getTTL: 10, getAt: t0},
		{name: "expired is dropped", max: 4, ttl: 5, puts: []pooledLease{{1, t0}}, getTTL: 5, getAt: t0.Add(5 * time.Second)},
		{name: "expired dropped, older alive taken", max: 4, ttl: 5, puts: []pooledLease{{1, t0.Add(3 * time.Second)}, {2, t0}}, getTTL: 5, getAt: t0.Add(6 * time.Second), want: 1, wantOK: true},
		{name: "full refuses", max: 1, ttl: 5, puts: []pooledLease{{1, t0}, {2, t0}}, getTTL: 5, getAt: t0, want: 1, wantOK: true},
		{name: "full makes room from expired", max: 1, ttl: 5, puts: []pooledLease{{1, t0}, {2, t0.Add(10 * time.Second)}}, getTTL: 5, getAt: t0.Add(10 * time.Second), want: 2, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newLeasePool(tt.max)
			for _, l := range tt.puts {
				p.put(l.id, tt.ttl, l.deadline)
			}
			got, ok := p.get(tt.getTTL, tt.getAt)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.want, got)
			assert.LessOrEqual(t, p.len(), tt.max)
		})
	}
}

func TestLeasePoolPutAndDrain(t *testing.T) {
	p := newLeasePool(2)
	now := time.Unix(1000, 0)
	assert.True(t, p.put(1, 5, now))
	assert.True(t, p.put(2, 7, now))
	assert.False(t, p.put(3, 5, now), "full")
	assert.False(t, p.put(4, 0, now), "no TTL")
	assert.ElementsMatch(t, []clientv3.LeaseID{1, 2}, p.drain())
	assert.Zero(t, p.len())
	_, ok := p.get(5, now)
	assert.False(t, ok)

	var off *leasePool // LeasePool < 0
	assert.False(t, off.put(1, 5, now))
	_, ok = off.get(5, now)
	assert.False(t, ok)
}

// TestLeaseReuse: a released lock's lease backs the next lock, so a cycle
// grants no lease; with the pool off, every acquire grants one. (The first
// release also grants the server's receipt lease.)
func TestLeaseReuse(t *testing.T) {
	te := startEtcd(t)
	for _, tt := range []struct {
		name       string
		pool       int
		wantGrants int64
	}{{"pool", 0, 1 + 1}, {"nopool", -1, 5 + 1}} {
		t.Run(tt.name, func(t *testing.T) {
			s, c := startServer(t, te, func(c *Config) { c.LeasePool = tt.pool })
			ctx := t.Context()
			var leases []clientv3.LeaseID
			for i := range 5 {
				g, err := c.Acquire(ctx, tt.name+"-reuse", 3*time.Second, 0)
				require.NoError(t, err, "cycle %d", i)
				assert.Equal(t, 3*time.Second, g.TTL)
				lease, _ := lockLease(t, te, tt.name+"-reuse")
				leases = append(leases, lease)
				require.NoError(t, c.Release(ctx, tt.name+"-reuse", g.LockToken))
			}
			st := s.Stats()
			assert.Equal(t, tt.wantGrants, st.LeaseGrants)
			assert.Equal(t, 5-(tt.wantGrants-1), st.LeaseReuses)
			if tt.pool == 0 {
				assert.Equal(t, []clientv3.LeaseID{leases[0], leases[0], leases[0], leases[0], leases[0]}, leases)
				assert.EqualValues(t, 1, st.PooledLeases)
			}
		})
	}
}

// TestStaleRenewCannotExtendAReusedLease: after a release, the lease backs
// the next lock. The old owner's renews must not restart it, or a lock whose
// holder vanished would never expire.
func TestStaleRenewCannotExtendAReusedLease(t *testing.T) {
	te := startEtcd(t)
	_, c := startServer(t, te, nil)
	ctx := t.Context()
	old, err := c.Acquire(ctx, "first", time.Second, 0)
	require.NoError(t, err)
	oldLease, _ := lockLease(t, te, "first")
	require.NoError(t, c.Release(ctx, "first", old.LockToken))

	held, err := c.Acquire(ctx, "second", time.Second, 0) // never renewed by its owner
	require.NoError(t, err)
	heldLease, _ := lockLease(t, te, "second")
	require.Equal(t, oldLease, heldLease, "the lease was reused")

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	renewed := make(chan error, 1)
	go func() { // the old owner keeps renewing its stale token
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := c.Renew(rctx, "first", old.LockToken, 0); rctx.Err() == nil && err != nil && !assert.ErrorIs(t, err, ErrNotHeld) {
				renewed <- err
				return
			}
			select {
			case <-rctx.Done():
				renewed <- nil
				return
			case <-tick.C:
			}
		}
	}()
	require.Eventually(t, func() bool {
		info, err := c.Get(ctx, "second")
		return err == nil && !info.Held
	}, held.TTL+2*time.Second, 50*time.Millisecond, "the unrenewed lock expires despite the stale renews")
	stop()
	require.NoError(t, <-renewed)
}

// TestReleaseReceiptLifetime: a release leaves a receipt (for watchers) on
// the server's receipt lease, not on the released lock's lease (which the
// pool hands to the next lock); the next grant of the resource removes it.
func TestReleaseReceiptLifetime(t *testing.T) {
	te := startEtcd(t)
	_, c := startServer(t, te, nil)
	ctx := t.Context()
	receipt := func() string {
		resp, err := te.cli.Get(ctx, releasedKey("rcpt"))
		require.NoError(t, err)
		if len(resp.Kvs) == 0 {
			return ""
		}
		return string(resp.Kvs[0].Value)
	}
	g, err := c.Acquire(ctx, "rcpt", 5*time.Second, 0)
	require.NoError(t, err)
	assert.Empty(t, receipt())
	lockLeaseID, _ := lockLease(t, te, "rcpt")
	require.NoError(t, c.Release(ctx, "rcpt", g.LockToken))
	assert.Equal(t, HashToken(g.LockToken), receipt())
	resp, err := te.cli.Get(ctx, releasedKey("rcpt"))
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	assert.NotEqual(t, lockLeaseID, clientv3.LeaseID(resp.Kvs[0].Lease), "the receipt is not on the lock's lease")
	ttl, err := te.cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	require.NoError(t, err)
	assert.EqualValues(t, 60, ttl.GrantedTTL, "on a receipt lease of ReceiptTTL (default 60 s)")
	_, err = c.Acquire(ctx, "rcpt", 5*time.Second, 0)
	require.NoError(t, err)
	assert.Empty(t, receipt())
}

// TestWaitDeleteSeesAnEarlierDelete: the wait's watch starts at etcd's
// current revision, so a delete that happened before it started must be
// caught by the read after the watch is created, not waited out.
func TestWaitDeleteSeesAnEarlierDelete(t *testing.T) {
	te := startEtcd(t)
	s, _ := startServer(t, te, nil)
	_, err := te.cli.Put(t.Context(), "/gone", "x")
	require.NoError(t, err)
	_, err = te.cli.Delete(t.Context(), "/gone")
	require.NoError(t, err)
	deleted, err := s.waitDelete(t.Context(), "/gone", time.Now().Add(time.Minute))
	require.NoError(t, err)
	assert.True(t, deleted, "returned at the deadline instead of seeing the key absent")

	// And a delete after the watch started is seen as an event.
	_, err = te.cli.Put(t.Context(), "/later", "x")
	require.NoError(t, err)
	done := make(chan bool, 1)
	go func() {
		d, err := s.waitDelete(t.Context(), "/later", time.Now().Add(time.Minute))
		assert.NoError(t, err)
		done <- d
	}()
	_, err = te.cli.Delete(t.Context(), "/later")
	require.NoError(t, err)
	select {
	case d := <-done:
		assert.True(t, d)
	case <-time.After(30 * time.Second):
		t.Fatal("waitDelete missed the delete")
	}
}

// TestTimedOutWaiterLeavesNoKeyUnderAPooledLease: a queued acquire that
// times out deletes its waiter key before answering, and gives its lock's
// lease (which never carried the waiter key) back to the pool.
func TestTimedOutWaiterLeavesNoKeyUnderAPooledLease(t *testing.T) {
	te := startEtcd(t)
	s, c := startServer(t, te, nil)
	ctx := t.Context()
	holder, err := c.Acquire(ctx, "q", 5*time.Second, 0)
	require.NoError(t, err)
	_, err = c.Acquire(ctx, "q", 5*time.Second, 300*time.Millisecond)
	require.ErrorIs(t, err, ErrBusy)
	info, err := c.Get(ctx, "q")
	require.NoError(t, err)
	assert.Zero(t, info.Waiters, "the timed-out waiter left the queue")
	assert.EqualValues(t, 1, s.Stats().PooledLeases, "its lock lease was kept")

	require.NoError(t, c.Release(ctx, "q", holder.LockToken))
	_, err = c.Acquire(ctx, "q", 5*time.Second, 0)
	require.NoError(t, err, "nobody is queued: a try-once acquire gets the free lock")
}

// TestWaiterKeepsItsPlacePastItsTTL: a waiter's key lives on a lease of its
// own that lasts as long as its timeout; a waiter whose TTL is shorter than
// its wait is still served before later arrivals.
func TestWaiterKeepsItsPlacePastItsTTL(t *testing.T) {
	te := startEtcd(t)
	_, c := startServer(t, te, nil)
	ctx := t.Context()
	holder, err := c.Acquire(ctx, "fifo", 10*time.Second, 0)
	require.NoError(t, err)
	waiters := func(n int64) func() bool {
		return func() bool {
			info, err := c.Get(ctx, "fifo")
			return err == nil && info.Waiters == n
		}
	}
	type result struct {
		g   Grant
		err error
	}
	first, second := make(chan result, 1), make(chan result, 1)
	go func() {
		g, err := c.Acquire(ctx, "fifo", time.Second, 10*time.Second) // TTL 1 s, waits ~3 s
		if err == nil {
			err = c.Release(ctx, "fifo", g.LockToken)
		}
		first <- result{g, err}
	}()
	require.Eventually(t, waiters(1), 30*time.Second, 10*time.Millisecond)
	go func() {
		g, err := c.Acquire(ctx, "fifo", 10*time.Second, 10*time.Second)
		second <- result{g, err}
	}()
	require.Eventually(t, waiters(2), 30*time.Second, 10*time.Millisecond)
	<-time.After(3 * time.Second) // three of the first waiter's TTLs pass (not a condition to wait for)
	require.True(t, waiters(2)(), "both waiters are still queued")
	require.NoError(t, c.Release(ctx, "fifo", holder.LockToken))
	r1, r2 := <-first, <-second
	require.NoError(t, r1.err)
	require.NoError(t, r2.err)
	assert.Less(t, r1.g.FencingToken, r2.g.FencingToken, "the first waiter was served first")
}
