package lockserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestAcquireReleaseLifecycle(t *testing.T) {
	te := startEtcd(t)
	_, c := startServer(t, te, nil)
	ctx := t.Context()
	const res = "order:12345/a"

	before := time.Now()
	g1, err := c.Acquire(ctx, res, 2*time.Second, 0)
	after := time.Now()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(g1.LockToken), 32, "token carries >= 128 random bits")
	assert.Positive(t, g1.FencingToken)
	assert.Equal(t, 2*time.Second, g1.TTL)
	assertExpiresWithin(t, g1, before, after)

	// etcd stores the token's hash, never the token.
	kv, err := te.cli.Get(ctx, lockKey(res))
	require.NoError(t, err)
	require.Len(t, kv.Kvs, 1)
	assert.Equal(t, hashToken(g1.LockToken), string(kv.Kvs[0].Value))
	assert.Equal(t, g1.FencingToken, kv.Kvs[0].CreateRevision)

	info, err := c.Get(ctx, res)
	require.NoError(t, err)
	assert.Equal(t, LockInfo{ResourceID: res, Held: true, OwnerID: "client-test", FencingToken: g1.FencingToken, ExpiresAt: info.ExpiresAt}, info)

	_, err = c.Acquire(ctx, res, 2*time.Second, 0)
	assert.ErrorIs(t, err, ErrBusy, "second acquire while held")

	other, err := newToken()
	require.NoError(t, err)
	for name, tok := range map[string]string{"random": other, "garbage": "not-a-token", "tampered": g1.LockToken[:len(g1.LockToken)-1] + "0"} {
		if tok == g1.LockToken {
			continue
		}
		assert.ErrorIs(t, c.Release(ctx, res, tok), ErrNotHeld, name)
	}
	assert.ErrorIs(t, c.Release(ctx, "other", g1.LockToken), ErrNotHeld, "token of another resource")

	require.NoError(t, c.Release(ctx, res, g1.LockToken))
	assert.ErrorIs(t, c.Release(ctx, res, g1.LockToken), ErrNotHeld, "released twice")
	info, err = c.Get(ctx, res)
	require.NoError(t, err)
	assert.False(t, info.Held)

	g2, err := c.Acquire(ctx, res, 2*time.Second, 0)
	require.NoError(t, err)
	assert.Greater(t, g2.FencingToken, g1.FencingToken)
	assert.NotEqual(t, g1.LockToken, g2.LockToken)
}

// TestEtcdRangeCompareSemantics pins the etcd behaviour the queue relies on:
// an empty range compares as a zero KeyValue, and over a range every key must match.
func TestEtcdRangeCompareSemantics(t *testing.T) {
	te := startEtcd(t)
	ctx := t.Context()
	p := waitersPrefix("r")
	empty := clientv3.Compare(clientv3.CreateRevision(p).WithPrefix(), "=", 0)

	resp, err := te.cli.Txn(ctx).If(empty).Commit()
	require.NoError(t, err)
	assert.True(t, resp.Succeeded, "empty range == 0")

	r1, err := te.cli.Put(ctx, p+"1", "")
	require.NoError(t, err)
	r2, err := te.cli.Put(ctx, p+"2", "")
	require.NoError(t, err)
	_, err = te.cli.Put(ctx, waitersPrefix("r2")+"x", "") // another resource: outside the range
	require.NoError(t, err)

	tests := []struct {
		name string
		cmp  clientv3.Cmp
		want bool
	}{
		{"non-empty range is not == 0", empty, false},
		{"oldest waiter: every key > its rev-1", clientv3.Compare(clientv3.CreateRevision(p).WithPrefix(), ">", r1.Header.Revision-1), true},
		{"second waiter: an older key fails the range", clientv3.Compare(clientv3.CreateRevision(p).WithPrefix(), ">", r2.Header.Revision-1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := te.cli.Txn(ctx).If(tt.cmp).Commit()
			require.NoError(t, err)
			assert.Equal(t, tt.want, resp.Succeeded)
		})
	}
}

func TestExpiredLockGoesToBlockedWaiter(t *testing.T) {
	te := startEtcd(t)
	_, c := startServer(t, te, nil)
	ctx := t.Context()

	holder, err := c.Acquire(ctx, "exp", time.Second, 0) // never renewed
	require.NoError(t, err)
	start := time.Now()
	g, err := c.Acquire(ctx, "exp", 2*time.Second, 3*time.Second)
	elapsed := time.Since(start)
	require.NoError(t, err)
	t.Logf("waiter granted after %v (holder ttl %v)", elapsed, holder.TTL)
	assert.Greater(t, g.FencingToken, holder.FencingToken)
	assert.Greater(t, elapsed, holder.TTL/2, "the waiter blocked while the lease lived")
	assert.Less(t, elapsed, holder.TTL+10*time.Second, "granted once the lease ended (generous: a busy machine is slow, not wrong)")
	assert.ErrorIs(t, c.Release(ctx, "exp", holder.LockToken), ErrNotHeld, "the expired holder cannot release")
}

func TestBlockedAcquireTimesOutAndLeavesQueue(t *testing.T) {
	te := startEtcd(t)
	s, c := startServer(t, te, nil)
	ctx := t.Context()
	_, err := c.Acquire(ctx, "q", 30*time.Second, 0)
	require.NoError(t, err)
	start := time.Now()
	_, err = c.Acquire(ctx, "q", 30*time.Second, 300*time.Millisecond)
	assert.ErrorIs(t, err, ErrBusy)
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	resp, err := te.cli.Get(ctx, waitersPrefix("q"), clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.Zero(t, resp.Count, "the waiter key is gone once 409 is answered")
	assert.Zero(t, s.Stats().Waiters)
	assert.Equal(t, int64(1), s.Stats().AcquireBusy)
}

// TestWaitersFIFOAcrossServers queues 5 waiters alternately on two servers
// and checks they are granted in arrival order, each by the release before
// it handing the lock over (one wake-up per release, and no grant txn), with
// fencing tokens that increase.
func TestWaitersFIFOAcrossServers(t *testing.T) {
	te := startEtcd(t)
	s1, c1 := startServer(t, te, nil)
	s2, c2 := startServer(t, te, nil)
	ctx := t.Context()
	const res = "fifo"
	txns := func() int64 { return s1.Stats().GrantTxns + s2.Stats().GrantTxns }
	handOvers := func() int64 { return s1.Stats().HandOvers + s2.Stats().HandOvers }
	handedOver := func() int64 { return s1.Stats().HandedOver + s2.Stats().HandedOver }
	queued := func() int64 {
		resp, err := te.cli.Get(ctx, waitersPrefix(res), clientv3.WithPrefix(), clientv3.WithCountOnly())
		require.NoError(t, err)
		return resp.Count
	}

	holder, err := c1.Acquire(ctx, res, 30*time.Second, 0)
	require.NoError(t, err)

	type result struct {
		i   int
		g   Grant
		err error
	}
	results := make(chan result, 5)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for i := range 5 {
		c := &Client{BaseURL: []*Client{c1, c2}[i%2].BaseURL, ClientID: fmt.Sprintf("waiter-%d", i)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := c.Acquire(ctx, res, 30*time.Second, 20*time.Second)
			results <- result{i, g, err}
		}()
		require.Eventually(t, func() bool { return queued() == int64(i+1) }, 30*time.Second, 5*time.Millisecond, "waiter %d queued", i)
	}
	require.Eventually(t, func() bool { return s1.Stats().Waiters+s2.Stats().Waiters == 5 }, 10*time.Second, 5*time.Millisecond,
		"the servers count their waiters (just after queueing them)")
	info, err := c2.Get(ctx, res)
	require.NoError(t, err)
	assert.Equal(t, int64(5), info.Waiters)

	base, baseHO := txns(), handOvers()
	prev := holder
	for i := range 5 {
		require.NoError(t, c1.Release(ctx, res, prev.LockToken))
		var r result
		select {
		case r = <-results:
		case <-time.After(5 * time.Second):
			t.Fatalf("no grant after release %d", i)
		}
		require.NoError(t, r.err)
		assert.Equal(t, i, r.i, "granted in arrival order")
		assert.Greater(t, r.g.FencingToken, prev.FencingToken)
		assert.Equal(t, int64(i+1), handOvers()-baseHO, "each release handed the lock over")
		assert.Equal(t, int64(i+1), handedOver(), "each waiter was answered with a handed-over lock")
		assert.Equal(t, base, txns(), "no waiter had to take the lock itself")
		info, err := c2.Get(ctx, res)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("waiter-%d", i), info.OwnerID)
		prev = r.g
	}
	assert.Zero(t, queued())
}

func TestRenewExtendsLease(t *testing.T) {
	te := startEtcd(t)
	_, c := startServer(t, te, nil)
	ctx := t.Context()
	g, err := c.Acquire(ctx, "renew", time.Second, 0)
	require.NoError(t, err)

	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	last := g
	for range 6 { // 1.8 s: past the unrenewed expiry
		<-tick.C
		r, err := c.Renew(ctx, "renew", g.LockToken, 5*time.Second)
		require.NoError(t, err)
		assert.Equal(t, g.FencingToken, r.FencingToken)
		assert.Equal(t, g.LockToken, r.LockToken)
		assert.Equal(t, 5*time.Second, r.TTL, "the TTL asked for")
		assert.True(t, r.ExpiresAt.After(last.ExpiresAt))
		last = r
	}
	require.True(t, time.Now().After(g.ExpiresAt), "the original lease would have expired by now")
	info, err := c.Get(ctx, "renew")
	require.NoError(t, err)
	assert.True(t, info.Held)
	assert.Equal(t, g.FencingToken, info.FencingToken)

	other, err := newToken()
	require.NoError(t, err)
	_, err = c.Renew(ctx, "renew", other, 0)
	assert.ErrorIs(t, err, ErrNotHeld)
	require.NoError(t, c.Release(ctx, "renew", g.LockToken))
	_, err = c.Renew(ctx, "renew", g.LockToken, 0)
	assert.ErrorIs(t, err, ErrNotHeld, "renew after release")
}

func TestSafeAcquireUnderContentionGrantsOnce(t *testing.T) {
	te := startEtcd(t)
	_, c := startServer(t, te, nil)
	errs := contend(t.Context(), c, "hot", 8)
	ok, busy := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrBusy):
			busy++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	assert.Equal(t, 1, ok)
	assert.Equal(t, 7, busy)
}

// contend runs n concurrent try-once acquires of res.
func contend(ctx context.Context, c *Client, res string, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Acquire(ctx, res, 10*time.Second, 0)
		}()
	}
	wg.Wait()
	return errs
}

func TestUnsafeCheckThenSetDoubleGrants(t *testing.T) {
	t.Run("hook holds both between Get and Put", func(t *testing.T) {
		te := startEtcd(t)
		s, err := New(Config{Endpoints: []string{te.url}, Unsafe: UnsafeCheckThenSet})
		require.NoError(t, err)
		both := make(chan struct{})
		var mu sync.Mutex
		arrived := 0
		s.unsafeHook = func() {
			mu.Lock()
			arrived++
			if arrived == 2 {
				close(both)
			}
			mu.Unlock()
			select {
			case <-both:
			case <-time.After(5 * time.Second):
			}
		}
		require.NoError(t, s.Start(t.Context()))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		c := &Client{BaseURL: s.URL()}
		var wg sync.WaitGroup
		grants := make([]Grant, 2)
		errs := make([]error, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				grants[i], errs[i] = c.Acquire(t.Context(), "u", 10*time.Second, 0)
			}()
		}
		wg.Wait()
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		assert.NotEqual(t, grants[0].FencingToken, grants[1].FencingToken, "two holders at once")
	})
	t.Run("gap under contention", func(t *testing.T) {
		te := startEtcd(t)
		_, c := startServer(t, te, func(cfg *Config) { cfg.Unsafe, cfg.UnsafeGap = UnsafeCheckThenSet, 200*time.Millisecond })
		ok := 0
		for _, err := range contend(t.Context(), c, "u", 4) {
			if err == nil {
				ok++
			}
		}
		assert.GreaterOrEqual(t, ok, 2, "double grant")
	})
}

// assertExpiresWithin checks that g's expiry is its TTL from a moment
// within the request (sent at before, answered at after): the lease's TTL
// starts when the lock server sends its grant or restart, never before the
// request and never after its answer. A bound by ordering, not by speed.
func assertExpiresWithin(t *testing.T, g Grant, before, after time.Time) {
	t.Helper()
	from := g.ExpiresAt.Add(-g.TTL)
	assert.False(t, from.Before(before.Truncate(time.Microsecond)), "the TTL counts from %v, before the request (%v)", from, before)
	assert.False(t, from.After(after), "the TTL counts from %v, after the answer (%v)", from, after)
}

// TestGrantedTTLIsReported: etcd leases have whole seconds; the answer says
// the TTL in effect, not the one asked for.
func TestGrantedTTLIsReported(t *testing.T) {
	te := startEtcd(t)
	_, c := startServer(t, te, nil)
	tests := []struct {
		ask, want time.Duration
	}{
		{300 * time.Millisecond, time.Second},
		{1500 * time.Millisecond, 2 * time.Second},
		{3 * time.Second, 3 * time.Second},
	}
	for i, tt := range tests {
		t.Run(tt.ask.String(), func(t *testing.T) {
			before := time.Now()
			g, err := c.Acquire(t.Context(), fmt.Sprintf("ttl-%d", i), tt.ask, 0)
			after := time.Now()
			require.NoError(t, err)
			assert.Equal(t, tt.want, g.TTL)
			assertExpiresWithin(t, g, before, after)
			lease, _ := lockLease(t, te, fmt.Sprintf("ttl-%d", i))
			ttl, err := te.cli.TimeToLive(t.Context(), lease)
			require.NoError(t, err)
			assert.Equal(t, int64(tt.want/time.Second), ttl.GrantedTTL)
		})
	}
}

// benchClient is a client of one lock server on one etcd member (fsync off).
func benchClient(b *testing.B) *Client {
	te := startEtcdB(b)
	s, err := New(Config{Endpoints: []string{te.url}})
	require.NoError(b, err)
	require.NoError(b, s.Start(b.Context()))
	b.Cleanup(func() { require.NoError(b, s.Close()) })
	return &Client{BaseURL: s.URL()}
}

// BenchmarkAcquireRelease measures one client's acquire+release cycles.
func BenchmarkAcquireRelease(b *testing.B) {
	c := benchClient(b)
	for b.Loop() {
		g, err := c.Acquire(b.Context(), "bench", 10*time.Second, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Release(b.Context(), "bench", g.LockToken); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenew measures one client's renews of one held lock (each moves
// the lock to a pooled lease).
func BenchmarkRenew(b *testing.B) {
	c := benchClient(b)
	g, err := c.Acquire(b.Context(), "bench", 10*time.Second, 0)
	require.NoError(b, err)
	for b.Loop() {
		if _, err := c.Renew(b.Context(), "bench", g.LockToken, 0); err != nil {
			b.Fatal(err)
		}
	}
}
