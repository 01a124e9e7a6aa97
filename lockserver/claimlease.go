package lockserver

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// claimTTL is the TTL of the claim leases waiter keys live on (etcd's
// minimum TTL may make it longer), and claimEvery how often the keeper
// restarts them: a waiter whose server crashed or froze leaves the queue
// within about claimTTL (plus etcd's expiry granularity, half a second).
const (
	claimTTL   = 2 * time.Second
	claimEvery = 500 * time.Millisecond
)

// waiterSlack is how much later than its deadline a waiter key may leave
// the queue when its server does not delete it (a delete that failed): a
// claim lease serves waiters whose deadlines fall within waiterSlack before
// the time it is kept alive until, so that under load a server grants a
// claim lease only now and then.
const waiterSlack = 1500 * time.Millisecond

// claimLeases are the leases this server's waiter keys live on.
//
// A waiter key is the acquire's place in the queue and its claim to the
// lock: a release hands the lock over to the oldest registered waiter. So it
// must leave the queue soon after its server crashed or froze (or a release
// would hand the lock to nobody, for that lock's TTL), and soon after its
// acquire's deadline even when the server could not delete it, and must
// stay while the acquire waits. It lives on a claim lease: a short lease
// (claimTTL) that the keeper restarts every claimEvery while its waiters may
// still wait, up to the latest deadline it serves plus waiterSlack, and
// never after. A crashed or frozen server stops restarting it, and its
// waiters leave the queue within about claimTTL; a waiter whose delete
// failed leaves within about waiterSlack + claimTTL after its deadline.
//
// A claim lease serves every waiter of this server whose deadline fits
// (fits), so under load a server grants a couple of claim leases per second,
// whatever the rate of blocking acquires, and a blocking acquire usually
// makes no lease call for its waiter key. Claim leases are never pooled or
// revoked: each waiter deletes its own key, and the lease expires with
// whatever is left.
type claimLeases struct {
	mu   sync.Mutex
	live []*claimLease
}

// claimLease is one shared lease, or its grant in flight.
type claimLease struct {
	ready chan struct{} // closed once l or err is set
	l     lease
	err   error
	low   time.Time // kept alive until low (guarded by claimLeases.mu)
}

// fits reports whether a lease kept alive until low serves a waiter with
// this deadline: it outlives the deadline, by at most waiterSlack.
func fits(low, deadline time.Time) bool {
	return !low.Before(deadline) && !low.After(deadline.Add(waiterSlack))
}

// claimLease returns a lease for a waiter key of an acquire that waits until
// deadline: a shared one that fits, or a new grant.
func (s *Server) claimLease(ctx context.Context, deadline time.Time) (lease, error) {
	for {
		c, mine := s.claims.find(deadline, s.cfg.Now(), s.keeper.alive)
		if mine {
			l, err := s.grantLease(ctx, claimTTL)
			if err == nil {
				s.keeper.keep(l, claimEvery, c.low)
			}
			s.claims.done(c, l, err)
			return l, err
		}
		select {
		case <-c.ready:
		case <-ctx.Done():
			return lease{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
		if c.err == nil && s.keeper.alive(c.l.id) {
			return c.l, nil
		}
		// Another waiter's grant failed (perhaps its own request ended), or
		// the lease died: look again, and grant when nobody else does.
	}
}

// find returns a live claim lease that fits deadline, or registers a new one
// that the caller (mine) must grant and report with done: it is kept alive
// until deadline+waiterSlack. alive tells whether a granted lease is still
// restarted by the keeper.
func (p *claimLeases) find(deadline, now time.Time, alive func(clientv3.LeaseID) bool) (c *claimLease, mine bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live = slices.DeleteFunc(p.live, func(c *claimLease) bool {
		if c.low.Before(now) {
			return true
		}
		select {
		case <-c.ready:
			return c.err != nil || !alive(c.l.id)
		default:
			return false
		}
	})
	for _, c := range p.live {
		if fits(c.low, deadline) {
			return c, false
		}
	}
	c = &claimLease{ready: make(chan struct{}), low: deadline.Add(waiterSlack)}
	p.live = append(p.live, c)
	return c, true
}

// done publishes the grant of c.
func (p *claimLeases) done(c *claimLease, l lease, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.l, c.err = l, err
	if err != nil {
		p.live = slices.DeleteFunc(p.live, func(x *claimLease) bool { return x == c })
	}
	close(c.ready)
}
