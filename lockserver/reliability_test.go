package lockserver

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// TestRenewHonoursTheRequestedTTL: a renew gives the lock the TTL it asks
// for (rounded up like an acquire's), keeps its fencing token and its
// lockToken, and the lock outlives its first lease.
func TestRenewHonoursTheRequestedTTL(t *testing.T) {
	te := startEtcd(t)
	_, c := startServer(t, te, nil)
	other := &Client{BaseURL: c.BaseURL, ClientID: "other"}
	ctx := t.Context()

	g, err := c.Acquire(ctx, "renew-ttl", 2*time.Second, 0)
	require.NoError(t, err)
	before := time.Now()
	r, err := c.Renew(ctx, "renew-ttl", g.LockToken, 10*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, r.TTL, "the TTL asked for")
	assert.WithinDuration(t, before.Add(10*time.Second), r.ExpiresAt, time.Second)
	assert.Equal(t, g.FencingToken, r.FencingToken, "a renew keeps the fencing token")
	assert.Equal(t, g.LockToken, r.LockToken)

	lease, created := lockLease(t, te, "renew-ttl")
	assert.Equal(t, g.FencingToken, created, "the lock key keeps its CreateRevision")
	ttl, err := te.cli.TimeToLive(ctx, lease)
	require.NoError(t, err)
	assert.EqualValues(t, 10, ttl.GrantedTTL, "the lock lives on a lease of the renewed TTL")

	// The first lease's TTL passes (waiting for time, not for a condition).
	<-time.After(time.Until(g.ExpiresAt.Add(1500 * time.Millisecond)))
	_, err = other.Acquire(ctx, "renew-ttl", 2*time.Second, 0)
	assert.ErrorIs(t, err, ErrBusy, "the renewed lock outlives its first lease")
	info, err := c.Get(ctx, "renew-ttl")
	require.NoError(t, err)
	assert.True(t, info.Held)
	assert.Equal(t, g.FencingToken, info.FencingToken)

	// The same token renews and releases after the lock moved leases.
	r2, err := c.Renew(ctx, "renew-ttl", g.LockToken, 0)
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, r2.TTL, "without ttl a renew keeps the TTL in effect")
	assert.Equal(t, g.FencingToken, r2.FencingToken)
	assert.ErrorIs(t, c.Release(ctx, "other-resource", g.LockToken), ErrNotHeld, "never accepted for another lock")
	require.NoError(t, c.Release(ctx, "renew-ttl", g.LockToken))
	_, err = c.Renew(ctx, "renew-ttl", g.LockToken, 0)
	assert.ErrorIs(t, err, ErrNotHeld, "renew after release")
	_, err = other.Acquire(ctx, "renew-ttl", 2*time.Second, 0)
	assert.NoError(t, err, "released: free for the next client")
}

// TestRenewTTLs: the renewed TTL is rounded up to whole seconds like an
// acquire's, and a renew never shortens a lock below what it was promised.
func TestRenewTTLs(t *testing.T) {
	te := startEtcd(t)
	_, c := startServer(t, te, nil)
	tests := []struct {
		name          string
		acquire, ask  time.Duration
		wantGranted   int64 // GrantedTTL of the lease behind the lock after the renew
		wantAtLeast   time.Duration
		keepsOldLease bool
	}{
		{name: "longer", acquire: time.Second, ask: 3 * time.Second, wantGranted: 3, wantAtLeast: 3 * time.Second},
		{name: "rounded up", acquire: time.Second, ask: 1500 * time.Millisecond, wantGranted: 2, wantAtLeast: 2 * time.Second},
		{name: "absent keeps the TTL", acquire: 2 * time.Second, ask: 0, wantGranted: 2, wantAtLeast: 2 * time.Second},
		{name: "shorter never shortens", acquire: 30 * time.Second, ask: time.Second, wantGranted: 30, wantAtLeast: time.Second, keepsOldLease: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := fmt.Sprintf("renew-ttls-%d", i)
			g, err := c.Acquire(t.Context(), res, tt.acquire, 0)
			require.NoError(t, err)
			old, _ := lockLease(t, te, res)
			before := time.Now()
			r, err := c.Renew(t.Context(), res, g.LockToken, tt.ask)
			require.NoError(t, err)
			assert.GreaterOrEqual(t, r.TTL, tt.wantAtLeast)
			assert.False(t, r.ExpiresAt.Before(before.Add(tt.wantAtLeast)), "expiresAt %v", r.ExpiresAt)
			assert.False(t, r.ExpiresAt.After(time.Now().Add(r.TTL)), "expiresAt promises no more than ttl from now")
			lease, _ := lockLease(t, te, res)
			ttl, err := te.cli.TimeToLive(t.Context(), lease)
			require.NoError(t, err)
			assert.Equal(t, tt.wantGranted, ttl.GrantedTTL)
			if tt.keepsOldLease {
				assert.Equal(t, old, lease)
				assert.False(t, r.ExpiresAt.After(g.ExpiresAt.Add(time.Second)), "not pushed past the lease in effect")
			}
			info, err := c.Get(t.Context(), res)
			require.NoError(t, err)
			assert.Equal(t, g.FencingToken, info.FencingToken)
		})
	}
}

// TestReleaseReceiptsExpire: release receipts live on a receipt lease of
// their own, so they leave etcd within Config.ReceiptTTL whatever the lease
// pool does with the released locks' leases: here one pooled lease backs 50
// distinct locks once and then one hot lock over and over, which keeps that
// lease alive for as long as the hot lock cycles.
func TestReleaseReceiptsExpire(t *testing.T) {
	te := startEtcd(t)
	_, c := startServer(t, te, func(cfg *Config) { cfg.ReceiptTTL = 2 * time.Second })
	ctx := t.Context()
	receipts := func() int64 {
		resp, err := te.cli.Get(ctx, ReleasedPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		require.NoError(t, err)
		return resp.Count
	}
	cycle := func(ctx context.Context, res string) error {
		g, err := c.Acquire(ctx, res, 5*time.Second, 0)
		if err != nil {
			return err
		}
		return c.Release(ctx, res, g.LockToken)
	}
	for i := range 50 {
		require.NoError(t, cycle(ctx, fmt.Sprintf("distinct-%d", i)))
	}
	require.Positive(t, receipts(), "releases leave receipts (the oldest may have expired already)")
	hot, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for hot.Err() == nil {
			if err := cycle(hot, "hot"); err != nil && hot.Err() == nil {
				t.Errorf("hot cycle: %v", err)
				return
			}
		}
	})
	start := time.Now()
	ok := assert.Eventually(t, func() bool { return receipts() <= 1 }, 15*time.Second, 50*time.Millisecond,
		"receipts stay in etcd while the hot lock cycles")
	stop()
	wg.Wait()
	if !ok {
		t.Logf("%d receipts after %v", receipts(), time.Since(start))
		return
	}
	t.Logf("receipts gone after %v", time.Since(start))

	// Every release still writes its receipt, for watchers.
	g, err := c.Acquire(ctx, "last", 5*time.Second, 0)
	require.NoError(t, err)
	require.NoError(t, c.Release(ctx, "last", g.LockToken))
	resp, err := te.cli.Get(ctx, releasedKey("last"))
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	assert.Equal(t, HashToken(g.LockToken), string(resp.Kvs[0].Value))
}

// TestStaleRenewLeavesAReusedLeaseAlone: a renew paused after it found its
// token holding the lock, while that lock is released and its lease reused
// for another lock, must answer not_holder without touching the other
// lock's lease.
func TestStaleRenewLeavesAReusedLeaseAlone(t *testing.T) {
	te := startEtcd(t)
	paused, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s, c := startServer(t, te, nil)
	s.renewHook = func() {
		once.Do(func() {
			close(paused)
			<-resume
		})
	}
	ctx := t.Context()
	g1, err := c.Acquire(ctx, "first", 3*time.Second, 0)
	require.NoError(t, err)
	l1, _ := lockLease(t, te, "first")
	renewed := make(chan error, 1)
	go func() {
		_, err := c.Renew(ctx, "first", g1.LockToken, 0)
		renewed <- err
	}()
	select {
	case <-paused:
	case <-time.After(10 * time.Second):
		t.Fatal("the renew never reached its hook")
	}
	require.NoError(t, c.Release(ctx, "first", g1.LockToken))
	g2, err := c.Acquire(ctx, "second", 3*time.Second, 0)
	require.NoError(t, err)
	l2, _ := lockLease(t, te, "second")
	require.Equal(t, l1, l2, "the released lock's lease backs the next lock")

	require.Eventually(t, func() bool { return remainingTTL(t, te, l2) <= 1 }, 10*time.Second, 20*time.Millisecond)
	close(resume)
	require.ErrorIs(t, <-renewed, ErrNotHeld)
	assert.LessOrEqual(t, remainingTTL(t, te, l2), int64(1), "the stale renew restarted another lock's lease")
	require.Eventually(t, func() bool {
		info, err := c.Get(ctx, "second")
		return err == nil && !info.Held
	}, g2.TTL+5*time.Second, 50*time.Millisecond, "the other lock expires on its own schedule")
}

// TestCrashedWaiterLeavesTheQueueByItsTimeout: a queued acquire whose lock
// server crashes stops blocking the lock soon after its own timeout, not
// after its (much longer) TTL.
func TestCrashedWaiterLeavesTheQueueByItsTimeout(t *testing.T) {
	te := startEtcd(t)
	_, c1 := startServer(t, te, nil)
	s2, c2 := startServer(t, te, nil)
	ctx := t.Context()
	holder, err := c1.Acquire(ctx, "w", 30*time.Second, 0)
	require.NoError(t, err)
	waited := make(chan error, 1)
	go func() {
		_, err := c2.Acquire(ctx, "w", 20*time.Second, time.Second)
		waited <- err
	}()
	require.Eventually(t, func() bool {
		info, err := c1.Get(ctx, "w")
		return err == nil && info.Waiters == 1
	}, 30*time.Second, 5*time.Millisecond, "the waiter queued")
	require.NoError(t, s2.Close()) // crash: nothing is cleaned up in etcd
	<-waited
	require.NoError(t, c1.Release(ctx, "w", holder.LockToken))
	start := time.Now()
	next := &Client{BaseURL: c1.BaseURL, ClientID: "next"}
	require.Eventually(t, func() bool {
		_, err := next.Acquire(ctx, "w", 5*time.Second, 0)
		return err == nil
	}, 8*time.Second, 50*time.Millisecond, "the crashed waiter (timeout 1 s, ttl 20 s) still blocks the free lock")
	t.Logf("free lock granted %v after the release", time.Since(start))
}

// TestEveryEtcdCallRequiresALeader: every unary etcd call of the lock logic,
// clean-ups included (leaving the queue, revoking leases), carries
// WithRequireLeader, so a member cut off from its leader answers at once and
// the retry interceptor sends the call to another member.
func TestEveryEtcdCallRequiresALeader(t *testing.T) {
	te := startEtcd(t)
	var mu sync.Mutex
	var without []string
	seen := map[string]bool{}
	record := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		md, _ := metadata.FromOutgoingContext(ctx)
		mu.Lock()
		seen[method] = true
		if got := md.Get(rpctypes.MetadataRequireLeaderKey); len(got) == 0 || got[0] != rpctypes.MetadataHasLeader {
			without = append(without, method)
		}
		mu.Unlock()
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	s, err := New(Config{Endpoints: []string{te.url}, EtcdTimeout: time.Second, LeasePool: -1}) // no pool: every lease is revoked
	require.NoError(t, err)
	s.dialOptions = []grpc.DialOption{grpc.WithChainUnaryInterceptor(record)}
	require.NoError(t, s.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	c := &Client{BaseURL: s.URL(), HTTP: newTestHTTPClient(t)}
	ctx := t.Context()

	g, err := c.Acquire(ctx, "rl", 5*time.Second, 0)
	require.NoError(t, err)
	_, err = c.Renew(ctx, "rl", g.LockToken, 6*time.Second)
	require.NoError(t, err)
	_, err = c.Acquire(ctx, "rl", 5*time.Second, 200*time.Millisecond) // queues, leaves the queue
	require.ErrorIs(t, err, ErrBusy)
	_, err = c.Get(ctx, "rl")
	require.NoError(t, err)
	require.NoError(t, c.Release(ctx, "rl", g.LockToken))
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(sctx)) // waits for the background revokes

	mu.Lock()
	defer mu.Unlock()
	assert.True(t, seen["/etcdserverpb.Lease/LeaseRevoke"], "the scenario revoked leases: %v", seen)
	assert.Empty(t, without, "etcd calls sent without WithRequireLeader")
}
