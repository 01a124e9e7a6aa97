package lockserver

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// queueLen is the number of waiter keys queued for res.
func queueLen(t *testing.T, te *testEtcd, res string) int64 {
	t.Helper()
	resp, err := te.cli.Get(t.Context(), waitersPrefix(res), clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	return resp.Count
}

// queuedWaiter starts a blocking acquire of res through c in the background
// and returns once it is queued in etcd (n waiters in all); its result
// arrives on the channel.
func queuedWaiter(t *testing.T, te *testEtcd, c *Client, res string, ttl, timeout time.Duration, n int64) <-chan acquired {
	t.Helper()
	ch := make(chan acquired, 1)
	go func() {
		g, err := c.Acquire(t.Context(), res, ttl, timeout)
		ch <- acquired{g, err}
	}()
	require.Eventually(t, func() bool { return queueLen(t, te, res) == n }, 30*time.Second, 5*time.Millisecond, "the waiter queued")
	return ch
}

// onGiveUp runs f once, when the first waiter of s has passed its deadline
// and is about to leave the queue; the function it returns gives f's error
// (nil until then).
func onGiveUp(s *Server, f func() error) func() error {
	var once sync.Once
	var mu sync.Mutex
	var ferr error
	s.giveUpHook = func() {
		once.Do(func() {
			err := f()
			mu.Lock()
			ferr = err
			mu.Unlock()
		})
	}
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		return ferr
	}
}

type acquired struct {
	g   Grant
	err error
}

func receive(t *testing.T, ch <-chan acquired) acquired {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("the acquire never answered")
		return acquired{}
	}
}

// TestReleaseHandsTheLockOverInOneWrite: a release of a lock with a waiter
// writes that waiter as the holder in the release's own txn. The waiter's
// fencing token is that txn's revision (higher than the old holder's), no
// other write follows, the lock is on the lease the waiter registered, and
// its registration is gone.
func TestReleaseHandsTheLockOverInOneWrite(t *testing.T) {
	te := startEtcd(t)
	s, c := startServer(t, te, nil)
	ctx := t.Context()
	holder, err := c.Acquire(ctx, "h", 30*time.Second, 0)
	require.NoError(t, err)
	_, holderRev := lockLease(t, te, "h")
	waiter := &Client{BaseURL: c.BaseURL, ClientID: "waiter"}
	ch := queuedWaiter(t, te, waiter, "h", 20*time.Second, 20*time.Second, 1)
	resp, err := te.cli.Get(ctx, waitersPrefix("h"), clientv3.WithPrefix())
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	reg, err := decodeRegistration(resp.Kvs[0])
	require.NoError(t, err)
	txns := s.Stats().GrantTxns

	before := te.revision(t)
	require.NoError(t, c.Release(ctx, "h", holder.LockToken))
	got := receive(t, ch)
	require.NoError(t, got.err)

	assert.Equal(t, before+1, got.g.FencingToken, "the fencing token is the release's revision")
	assert.Greater(t, got.g.FencingToken, holder.FencingToken)
	assert.Equal(t, got.g.FencingToken, te.revision(t), "no write after the release's")
	assert.Equal(t, txns, s.Stats().GrantTxns, "the waiter sent no grant txn")
	assert.Equal(t, int64(1), s.Stats().HandOvers)
	assert.Equal(t, int64(1), s.Stats().HandedOver)
	fams := scrapeServer(t, newTestHTTPClient(t), s.URL())
	assert.Equal(t, 1.0, sample(t, fams, "lockserver_handovers_total", nil).GetCounter().GetValue())
	lease, created := lockLease(t, te, "h")
	assert.Equal(t, reg.lease, lease, "the lock is on the lease the waiter registered")
	assert.Equal(t, holderRev, created, "the lock key was put, not re-created")
	assert.Zero(t, queueLen(t, te, "h"), "the registration is gone")
	assert.Less(t, got.g.TTL, 20*time.Second, "what the lease has left when the waiter learns of the hand-over, not its TTL")
	assert.Greater(t, got.g.TTL, 19*time.Second, "the head restarts its lease while it waits")
	assert.WithinDuration(t, time.Now().Add(got.g.TTL), got.g.ExpiresAt, time.Second, "ttl and expiresAt agree")

	info, err := c.Get(ctx, "h")
	require.NoError(t, err)
	assert.Equal(t, LockInfo{ResourceID: "h", Held: true, OwnerID: "waiter", FencingToken: got.g.FencingToken, ExpiresAt: info.ExpiresAt}, info)
	require.NoError(t, waiter.Release(ctx, "h", got.g.LockToken), "the handed-over token releases")
}

// TestHandOverOnlyToTheRegisteredOldestWaiter: the hand-over in a release
// txn (handOverOp) writes the waiter only while its registration is the
// one the release read and the oldest; otherwise the release deletes the
// lock (the actual head takes it itself).
func TestHandOverOnlyToTheRegisteredOldestWaiter(t *testing.T) {
	te := startEtcd(t)
	ctx := t.Context()
	lease, err := te.cli.Grant(ctx, 30)
	require.NoError(t, err)
	reg := func(res, name string) registration {
		r := registration{key: waitersPrefix(res) + name, hash: hashToken(name + "-token-0000000000000000000000000"), lease: lease.ID, ttl: 30 * time.Second, owner: name}
		put, err := te.cli.Put(ctx, r.key, encodeRegistration(r), clientv3.WithLease(lease.ID))
		require.NoError(t, err)
		r.rev = put.Header.Revision
		return r
	}
	tests := []struct {
		name   string
		setup  func(res string) registration // the head the release read
		handed bool
	}{
		{"the registered oldest waiter", func(res string) registration { return reg(res, "a") }, true},
		{"a registration that left", func(res string) registration {
			r := reg(res, "a")
			_, err := te.cli.Delete(ctx, r.key)
			require.NoError(t, err)
			return r
		}, false},
		{"a registration that left and queued again under the same name", func(res string) registration {
			r := reg(res, "a")
			_, err := te.cli.Delete(ctx, r.key)
			require.NoError(t, err)
			reg(res, "a")
			return r
		}, false},
		{"not the oldest", func(res string) registration {
			reg(res, "a")
			return reg(res, "b")
		}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := fmt.Sprint("guard-", i)
			_, err := te.cli.Put(ctx, lockKey(res), "old-holder")
			require.NoError(t, err)
			_, err = te.cli.Put(ctx, infoKey(res), encodeInfo(lockInfo{OwnerID: "old", TTL: 30}))
			require.NoError(t, err)
			head := tt.setup(res)
			resp, err := te.cli.Txn(ctx).Then(handOverOp(res, head, time.Now())).Commit()
			require.NoError(t, err)
			assert.Equal(t, tt.handed, resp.Responses[0].GetResponseTxn().Succeeded)
			lk, err := te.cli.Get(ctx, lockKey(res))
			require.NoError(t, err)
			if !tt.handed {
				assert.Empty(t, lk.Kvs, "a plain release deletes the lock")
				return
			}
			require.Len(t, lk.Kvs, 1)
			assert.Equal(t, head.hash, string(lk.Kvs[0].Value))
			assert.Equal(t, int64(lease.ID), lk.Kvs[0].Lease)
		})
	}
}

// TestTimedOutWaiterIsNeverHandedTheLock: a waiter that answered 409 has
// left the queue; a later release frees the lock instead of handing it to
// nobody.
func TestTimedOutWaiterIsNeverHandedTheLock(t *testing.T) {
	te := startEtcd(t)
	s, c := startServer(t, te, nil)
	ctx := t.Context()
	holder, err := c.Acquire(ctx, "t", 30*time.Second, 0)
	require.NoError(t, err)
	_, err = c.Acquire(ctx, "t", 30*time.Second, 300*time.Millisecond)
	require.ErrorIs(t, err, ErrBusy)
	require.True(t, s.contended.recent("t", time.Now()), "this server knows the lock had a waiter")

	require.NoError(t, c.Release(ctx, "t", holder.LockToken))
	info, err := c.Get(ctx, "t")
	require.NoError(t, err)
	assert.False(t, info.Held, "the lock is free, not handed to the waiter that left")
	assert.Zero(t, s.Stats().HandOvers)
	_, err = c.Acquire(ctx, "t", 30*time.Second, 0)
	assert.NoError(t, err)
}

// TestWaiterHandedTheLockAsItTimesOutGetsIt: a release that hands the lock
// over just as the waiter's deadline passes (before it leaves the queue) is
// not lost: the waiter's leave finds the lock is its own and answers with
// it, a little late, instead of 409 (which would leave a lock nobody uses).
func TestWaiterHandedTheLockAsItTimesOutGetsIt(t *testing.T) {
	te := startEtcd(t)
	s, c := startServer(t, te, nil)
	ctx := t.Context()
	holder, err := c.Acquire(ctx, "late", 30*time.Second, 0)
	require.NoError(t, err)
	released := onGiveUp(s, func() error { return c.Release(context.Background(), "late", holder.LockToken) })
	g, err := c.Acquire(ctx, "late", 30*time.Second, 300*time.Millisecond)
	require.NoError(t, released())
	require.NoError(t, err, "the hand-over that came at the deadline is the answer")
	assert.Equal(t, int64(1), s.Stats().HandOvers)
	info, err := c.Get(ctx, "late")
	require.NoError(t, err)
	assert.Equal(t, g.FencingToken, info.FencingToken)
	require.NoError(t, c.Release(ctx, "late", g.LockToken))
}

// TestWaiterHandedALockThatEndedUnseenIsUnknown: a release hands the lock
// over to a waiter, and the lock ends (its lease runs out: the waiter's
// server could not restart it) before the waiter sees it. When the waiter's
// deadline passes, etcd has recorded a grant to this acquire, so its answer
// must not be 409 "busy" (nothing happened) but "outcome unknown": with a
// definite failure, the history holds a grant no acquire accounts for, and
// settling unknown outcomes gives it to a later acquire of the same client.
func TestWaiterHandedALockThatEndedUnseenIsUnknown(t *testing.T) {
	te := startEtcd(t)
	s, c := startServer(t, te, nil)
	ctx := t.Context()
	holder, err := c.Acquire(ctx, "unseen", 30*time.Second, 0)
	require.NoError(t, err)
	handed := onGiveUp(s, func() error {
		if err := c.Release(context.Background(), "unseen", holder.LockToken); err != nil {
			return err
		}
		lk, err := te.cli.Get(context.Background(), lockKey("unseen"))
		if err != nil {
			return err
		}
		if len(lk.Kvs) != 1 {
			return fmt.Errorf("the release did not hand the lock over: %d lock keys", len(lk.Kvs))
		}
		_, err = te.cli.Revoke(context.Background(), clientv3.LeaseID(lk.Kvs[0].Lease))
		return err
	})
	_, err = c.Acquire(ctx, "unseen", 30*time.Second, 300*time.Millisecond)
	require.NoError(t, handed())
	assert.Equal(t, int64(1), s.Stats().HandOvers)
	require.ErrorIs(t, err, ErrOutcomeUnknown, "etcd granted the lock to this acquire")
	assert.NotErrorIs(t, err, ErrBusy)
}

// TestCrashedWaitersServerLeavesTheQueueSoon: the waiter of a lock server
// that crashed leaves the queue within its claim lease's TTL, long before
// its own timeout, so no release hands it the lock, and the lock is free
// for others.
func TestCrashedWaitersServerLeavesTheQueueSoon(t *testing.T) {
	te := startEtcd(t)
	s1, c1 := startServer(t, te, nil)
	s2, c2 := startServer(t, te, nil)
	ctx := t.Context()
	holder, err := c1.Acquire(ctx, "crash", 30*time.Second, 0)
	require.NoError(t, err)
	ch := queuedWaiter(t, te, c2, "crash", 30*time.Second, 60*time.Second, 1)
	require.NoError(t, s2.Close()) // crash: nothing is cleaned up in etcd
	<-ch
	require.Eventually(t, func() bool { return queueLen(t, te, "crash") == 0 }, 20*time.Second, 50*time.Millisecond,
		"the crashed waiter (timeout 60 s) is still queued")

	s1.contended.note("crash", time.Now()) // the release looks for a head to hand over to
	require.NoError(t, c1.Release(ctx, "crash", holder.LockToken))
	assert.Zero(t, s1.Stats().HandOvers)
	_, err = (&Client{BaseURL: c1.BaseURL, ClientID: "next"}).Acquire(ctx, "crash", 30*time.Second, 0)
	assert.NoError(t, err, "the lock is free")
}

// TestFirstReleaseOnAnotherServerLetsTheHeadTakeTheLock: a release through a
// server that has not seen the lock's waiters deletes the lock, and the head
// takes it itself (one grant txn: one wake-up); that release tells the
// server about the waiters left, and its next release hands over.
func TestFirstReleaseOnAnotherServerLetsTheHeadTakeTheLock(t *testing.T) {
	te := startEtcd(t)
	s1, c1 := startServer(t, te, nil)
	s2, c2 := startServer(t, te, nil)
	ctx := t.Context()
	holder, err := c1.Acquire(ctx, "x", 30*time.Second, 0)
	require.NoError(t, err)
	first := queuedWaiter(t, te, &Client{BaseURL: c2.BaseURL, ClientID: "w1"}, "x", 30*time.Second, 20*time.Second, 1)
	second := queuedWaiter(t, te, &Client{BaseURL: c2.BaseURL, ClientID: "w2"}, "x", 30*time.Second, 20*time.Second, 2)
	txns := s2.Stats().GrantTxns

	require.NoError(t, c1.Release(ctx, "x", holder.LockToken))
	g1 := receive(t, first)
	require.NoError(t, g1.err)
	assert.Zero(t, s1.Stats().HandOvers, "s1 had not seen waiters")
	assert.Equal(t, txns+1, s2.Stats().GrantTxns, "the head took the lock with one grant txn")
	assert.Greater(t, g1.g.FencingToken, holder.FencingToken)

	require.NoError(t, c1.Release(ctx, "x", g1.g.LockToken))
	g2 := receive(t, second)
	require.NoError(t, g2.err)
	assert.Equal(t, int64(1), s1.Stats().HandOvers, "the first release told s1 about the waiter left")
	assert.Greater(t, g2.g.FencingToken, g1.g.FencingToken)
}

// TestObserverSeesAHandOverAsAnEndAndAGrant: a hand-over is one put of the
// lock record; the Observer records it as the end of the old grant (with
// its release receipt) and a new grant whose revision is the new holder's
// fencing token. A renew of the handed-over lock keeps that token.
func TestObserverSeesAHandOverAsAnEndAndAGrant(t *testing.T) {
	te := startEtcd(t)
	_, c := startServer(t, te, nil)
	ctx := t.Context()
	start := time.Now()
	o, err := NewObserver(ctx, []string{te.url}, nil, func() time.Duration { return time.Since(start) })
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, o.Close()) })

	holder, err := c.Acquire(ctx, "o", 30*time.Second, 0)
	require.NoError(t, err)
	waiter := &Client{BaseURL: c.BaseURL, ClientID: "waiter"}
	ch := queuedWaiter(t, te, waiter, "o", 20*time.Second, 20*time.Second, 1)
	require.NoError(t, c.Release(ctx, "o", holder.LockToken))
	got := receive(t, ch)
	require.NoError(t, got.err)
	require.NoError(t, o.Sync(ctx))

	_, ended := o.Ended(holder.FencingToken)
	assert.True(t, ended, "the old grant ended")
	_, released := o.Released(HashToken(holder.LockToken))
	assert.True(t, released, "by a release")
	grants := o.Grants()
	require.Len(t, grants, 2)
	assert.Equal(t, RecordedGrant{Owner: "waiter", Resource: "o", Revision: got.g.FencingToken, TTL: 0, Seen: grants[1].Seen}, grants[1],
		"a new grant; its record promises nothing past the hand-over")
	assert.Equal(t, got.g.FencingToken, o.Held()["o"].FencingToken)

	r, err := waiter.Renew(ctx, "o", got.g.LockToken, 25*time.Second)
	require.NoError(t, err)
	assert.Equal(t, got.g.FencingToken, r.FencingToken, "a renew keeps the handed-over fencing token")
	require.NoError(t, o.Sync(ctx))
	assert.Len(t, o.Grants(), 2, "a renew is not a grant")
	assert.Equal(t, got.g.FencingToken, o.Held()["o"].FencingToken)
	info, err := c.Get(ctx, "o")
	require.NoError(t, err)
	assert.Equal(t, got.g.FencingToken, info.FencingToken)
	require.NoError(t, waiter.Release(ctx, "o", got.g.LockToken))
	require.NoError(t, o.Sync(ctx))
	_, ended = o.Ended(got.g.FencingToken)
	assert.True(t, ended)
}

// TestWaiterWhoseClientLeftLeavesTheQueue: a queued acquire whose client
// gave up (its request was cancelled) leaves the queue, so a later release
// frees the lock rather than handing it to nobody.
func TestWaiterWhoseClientLeftLeavesTheQueue(t *testing.T) {
	te := startEtcd(t)
	s, c := startServer(t, te, nil)
	ctx := t.Context()
	holder, err := c.Acquire(ctx, "gone", 30*time.Second, 0)
	require.NoError(t, err)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := c.Acquire(wctx, "gone", 30*time.Second, 20*time.Second)
		done <- err
	}()
	require.Eventually(t, func() bool { return queueLen(t, te, "gone") == 1 }, 30*time.Second, 5*time.Millisecond, "the waiter queued")
	cancel()
	<-done
	require.Eventually(t, func() bool { return queueLen(t, te, "gone") == 0 }, 10*time.Second, 10*time.Millisecond,
		"the waiter whose client left is still queued")
	require.NoError(t, c.Release(ctx, "gone", holder.LockToken))
	info, err := c.Get(ctx, "gone")
	require.NoError(t, err)
	assert.False(t, info.Held, "the lock was handed to a client that left")
	assert.Zero(t, s.Stats().HandOvers)
}

func TestPromise(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := lease{ttl: 10 * time.Second, since: t0}
	tests := []struct {
		name      string
		sent, now time.Time
		wantExp   time.Time
		wantTTL   time.Duration
	}{
		{"restarted right before the txn: the granted TTL", t0, t0.Add(time.Second), t0.Add(10 * time.Second), 10 * time.Second},
		{"restarted earlier: what is left", t0.Add(time.Millisecond), t0.Add(300 * time.Millisecond), t0.Add(10 * time.Second), 9700 * time.Millisecond},
		{"a hand-over: what is left", time.Time{}, t0.Add(250 * time.Millisecond), t0.Add(10 * time.Second), 9750 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp, ttl := promise(l, tt.sent, tt.now)
			assert.Equal(t, tt.wantTTL, ttl)
			assert.True(t, tt.wantExp.Equal(exp), "expiresAt %v, want %v", exp, tt.wantExp)
		})
	}
}
