package lockserver

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestObserverSeesGrantsReleasesAndExpiries: the Observer learns the locks
// held before it started, every grant after (a renew is not a grant),
// releases (by their receipts) and ends (release or lease expiry), as etcd
// recorded them.
func TestObserverSeesGrantsReleasesAndExpiries(t *testing.T) {
	te := startEtcd(t)
	_, c := startServer(t, te, nil)
	ctx := t.Context()
	pre, err := c.Acquire(ctx, "pre", 30*time.Second, 0)
	require.NoError(t, err)

	start := time.Now()
	o, err := NewObserver(ctx, []string{te.url}, nil, func() time.Duration { return time.Since(start) })
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, o.Close()) })
	assert.Equal(t, pre.FencingToken, o.Held()["pre"].FencingToken, "a lock held before the Observer started")

	g, err := c.Acquire(ctx, "a", 30*time.Second, 0)
	require.NoError(t, err)
	require.NoError(t, o.Sync(ctx))
	h, ok := o.Held()["a"]
	require.True(t, ok)
	assert.Equal(t, "client-test", h.Owner)
	assert.Equal(t, g.FencingToken, h.FencingToken)
	assert.Equal(t, 30*time.Second, h.TTL)
	lease, _ := lockLease(t, te, "a")
	assert.EqualValues(t, lease, h.Lease)

	// A renew moves the lock to another lease: the same grant, not a new one.
	_, err = c.Renew(ctx, "a", g.LockToken, 40*time.Second)
	require.NoError(t, err)
	require.NoError(t, o.Sync(ctx))
	h = o.Held()["a"]
	assert.Equal(t, g.FencingToken, h.FencingToken, "a renew keeps the fencing token")
	assert.Equal(t, 40*time.Second, h.TTL)
	moved, _ := lockLease(t, te, "a")
	assert.NotEqual(t, lease, moved)
	assert.EqualValues(t, moved, h.Lease)

	require.NoError(t, c.Release(ctx, "a", g.LockToken))
	require.NoError(t, o.Sync(ctx))
	assert.NotContains(t, o.Held(), "a")
	_, ok = o.Released(HashToken(g.LockToken))
	assert.True(t, ok, "the release receipt was seen")
	_, ok = o.Ended(g.FencingToken)
	assert.True(t, ok)

	exp, err := c.Acquire(ctx, "exp", time.Second, 0) // never released: its lease expires
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, ended := o.Ended(exp.FencingToken)
		return ended
	}, 10*time.Second, 20*time.Millisecond, "the expiry was seen")
	assert.NotContains(t, o.Held(), "exp")
	_, ok = o.Released(HashToken(exp.LockToken))
	assert.False(t, ok, "an expiry is not a release")

	var revs []int64
	for _, r := range o.Grants() {
		revs = append(revs, r.Revision)
	}
	assert.Equal(t, []int64{pre.FencingToken, g.FencingToken, exp.FencingToken}, revs, "every grant, in revision order")
	require.NoError(t, o.Close())
	require.NoError(t, o.Close(), "Close is idempotent")
}

// With Retain, the Observer forgets grants, deletions and receipts older
// than it and says from when on its record is complete.
func TestObserverForgetsOldRecords(t *testing.T) {
	o, c, clock := clockedObserver(t)
	ctx := t.Context()
	o.Retain(10 * time.Second)

	old, err := c.Acquire(ctx, "old", 30*time.Second, 0)
	require.NoError(t, err)
	require.NoError(t, c.Release(ctx, "old", old.LockToken))
	require.NoError(t, o.Sync(ctx))
	require.Len(t, o.Grants(), 1)
	assert.Zero(t, o.From(), "nothing forgotten yet")

	clock.Store(int64(time.Minute))
	g, err := c.Acquire(ctx, "new", 30*time.Second, 0)
	require.NoError(t, err)
	require.NoError(t, o.Sync(ctx))
	grants := o.Grants()
	require.Len(t, grants, 1, "the old grant is forgotten")
	assert.Equal(t, g.FencingToken, grants[0].Revision)
	_, ok := o.Released(HashToken(old.LockToken))
	assert.False(t, ok, "its receipt too")
	_, ok = o.Ended(old.FencingToken)
	assert.False(t, ok, "and its end")
	assert.Equal(t, 50*time.Second, o.From(), "complete from a minute minus ten seconds on")
}

// After the watch lost its place (etcd compacted the revisions it had not
// seen), resync takes the current locks: a grant already known is not
// recorded twice, a lock gone meanwhile is no longer held, and From says
// that what happened before is not known.
func TestObserverResyncAfterALostWatch(t *testing.T) {
	o, c, clock := clockedObserver(t)
	ctx := t.Context()
	_, err := c.Acquire(ctx, "kept", 30*time.Second, 0)
	require.NoError(t, err)
	require.NoError(t, o.Sync(ctx))
	require.Len(t, o.Grants(), 1)
	o.mu.Lock()
	o.held["ghost"] = HeldLock{Owner: "nobody", FencingToken: 1} // released while the watch was lost
	o.mu.Unlock()

	clock.Store(int64(time.Minute))
	_, err = o.resync(ctx)
	require.NoError(t, err)
	assert.Len(t, o.Grants(), 1, "the held lock's grant is not recorded twice")
	assert.Contains(t, o.Held(), "kept")
	assert.NotContains(t, o.Held(), "ghost")
	assert.Equal(t, time.Minute, o.From())
}

// clockedObserver starts etcd, a lock server and its client, and an
// Observer whose clock the test sets, closed when t ends.
func clockedObserver(t *testing.T) (*Observer, *Client, *atomic.Int64) {
	t.Helper()
	te := startEtcd(t)
	_, c := startServer(t, te, nil)
	clock := new(atomic.Int64)
	o, err := NewObserver(t.Context(), []string{te.url}, nil, func() time.Duration { return time.Duration(clock.Load()) })
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, o.Close()) })
	return o, c, clock
}
