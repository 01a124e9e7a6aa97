package lockserver

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// TestAcquireRestartsItsLeaseOnTheKeepAliveStream: an acquire that reuses a
// pooled lease restarts it over the server's long-lived keep-alive streams
// (sent with its grant txn), not with a KeepAliveOnce stream of its own, and
// still promises the full granted TTL from before the request.
func TestAcquireRestartsItsLeaseOnTheKeepAliveStream(t *testing.T) {
	te := startEtcd(t)
	var opened atomic.Int64
	count := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if method == "/etcdserverpb.Lease/LeaseKeepAlive" {
			opened.Add(1)
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
	s, err := New(Config{Endpoints: []string{te.url}})
	require.NoError(t, err)
	s.dialOptions = []grpc.DialOption{grpc.WithChainStreamInterceptor(count)}
	require.NoError(t, s.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	c := &Client{BaseURL: s.URL(), HTTP: newTestHTTPClient(t)}
	ctx := t.Context()
	require.Eventually(t, func() bool { return s.keeper.pick(true) != nil }, 10*time.Second, 5*time.Millisecond, "a keep-alive stream answers")
	base := s.Stats()

	const cycles = 30
	for range cycles {
		before := time.Now()
		g, err := c.Acquire(ctx, "k", 10*time.Second, 0)
		require.NoError(t, err)
		assert.Equal(t, 10*time.Second, g.TTL)
		assert.False(t, g.ExpiresAt.Before(before.Add(10*time.Second)), "expiresAt %v promises less than the TTL", g.ExpiresAt)
		require.NoError(t, c.Release(ctx, "k", g.LockToken))
	}
	st := s.Stats()
	assert.GreaterOrEqual(t, st.LeaseReuses-base.LeaseReuses, int64(cycles-1))
	assert.GreaterOrEqual(t, st.LeaseRestarts-base.LeaseRestarts, st.LeaseReuses-base.LeaseReuses, "every reused lease was restarted on a stream")
	assert.LessOrEqual(t, opened.Load(), int64(keeperStreams+2), "keep-alive streams opened for %d acquires", cycles)
}

// TestWaiterLeaseIsNotRestartedAfterItChangesHands: the keeper restarts a
// waiter's lock lease only while that waiter waits. Once the waiter gave up,
// the lease goes back to the pool and backs another lock, which must expire
// on its own schedule (the stale-renew hazard, for the keeper).
func TestWaiterLeaseIsNotRestartedAfterItChangesHands(t *testing.T) {
	te := startEtcd(t)
	_, c := startServer(t, te, nil)
	ctx := t.Context()
	_, err := c.Acquire(ctx, "held", 30*time.Second, 0)
	require.NoError(t, err)
	ch := queuedWaiter(t, te, c, "held", 3*time.Second, 1500*time.Millisecond, 1)
	resp, err := te.cli.Get(ctx, waitersPrefix("held"), clientv3.WithPrefix())
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	reg, err := decodeRegistration(resp.Kvs[0])
	require.NoError(t, err)
	require.ErrorIs(t, receive(t, ch).err, ErrBusy)

	g, err := c.Acquire(ctx, "other", 3*time.Second, 0)
	require.NoError(t, err)
	lease, _ := lockLease(t, te, "other")
	require.Equal(t, reg.lease, lease, "the waiter's lease backs the next lock")
	require.Eventually(t, func() bool { return remainingTTL(t, te, lease) <= 1 }, 10*time.Second, 20*time.Millisecond,
		"the lease of another lock is still restarted")
	require.Eventually(t, func() bool {
		info, err := c.Get(ctx, "other")
		return err == nil && !info.Held
	}, g.TTL+5*time.Second, 50*time.Millisecond, "the other lock expires on its own schedule")
}
