package lockserver

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// waiterSlack is how much later than its deadline a waiter key may expire
// on a shared waiter lease (on top of etcd's expiry granularity). It is more
// than a second so that, with whole-second TTLs, a new lease also fits the
// waiters that arrive during the next half second at least.
const waiterSlack = 1500 * time.Millisecond

// waiterLeases are the leases this server's waiter keys live on.
//
// A waiter key must leave the queue soon after its acquire's deadline even
// when its lock server crashes or freezes, and must stay while the acquire
// waits. So it lives on a lease that expires after the deadline, but not
// much after: granted with the time left until the deadline, rounded up to
// whole seconds so that it ends between the deadline and waiterSlack after
// it, and never kept alive (etcd never expires a lease early). Such a lease
// also serves every later waiter of this server whose deadline falls before
// it ends (by at most waiterSlack), so under load a server grants a couple
// of waiter leases per second, whatever the rate of blocking acquires, and a
// blocking acquire usually makes no lease call at all. Waiter leases are
// never pooled or revoked: each waiter deletes its own key, and the lease
// expires with whatever is left.
type waiterLeases struct {
	mu   sync.Mutex
	live []*waiterLease
}

// waiterLease is one shared lease, or its grant in flight.
type waiterLease struct {
	ready chan struct{} // closed once l or err is set
	l     lease
	err   error
	secs  int64     // the TTL to grant
	low   time.Time // the lease does not expire before low (guarded by waiterLeases.mu)
}

// fits reports whether a lease that expires no earlier than low serves a
// waiter with this deadline: it outlives the deadline, by at most waiterSlack.
func fits(low, deadline time.Time) bool {
	return !low.Before(deadline) && !low.After(deadline.Add(waiterSlack))
}

// waiterLease returns a lease for a waiter key of an acquire that waits
// until deadline: a shared one that fits, or a new grant.
func (s *Server) waiterLease(ctx context.Context, deadline time.Time) (lease, error) {
	for {
		w, mine := s.waiters.find(deadline, s.cfg.Now(), max(1, s.minTTL.Load()))
		if mine {
			l, err := s.grantLease(ctx, time.Duration(w.secs)*time.Second)
			s.waiters.done(w, l, err)
			return l, err
		}
		select {
		case <-w.ready:
		case <-ctx.Done():
			return lease{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
		if w.err == nil {
			return w.l, nil
		}
		// Another waiter's grant failed (perhaps its own request ended):
		// look again, and grant when nobody else does.
	}
}

// find returns a live lease that fits deadline, or registers a new one that
// the caller (mine) must grant and report with done: its TTL is the longest
// whole number of seconds that ends it by deadline+waiterSlack, which is
// never less than the time left (waiterSlack is over a second), and at least
// minSecs, etcd's minimum.
func (p *waiterLeases) find(deadline, now time.Time, minSecs int64) (w *waiterLease, mine bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live = slices.DeleteFunc(p.live, func(w *waiterLease) bool { return w.low.Before(now) })
	for _, w := range p.live {
		if fits(w.low, deadline) {
			return w, false
		}
	}
	secs := max(int64(deadline.Add(waiterSlack).Sub(now)/time.Second), minSecs)
	w = &waiterLease{ready: make(chan struct{}), secs: secs, low: now.Add(time.Duration(secs) * time.Second)}
	p.live = append(p.live, w)
	return w, true
}

// done publishes the grant of w.
func (p *waiterLeases) done(w *waiterLease, l lease, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w.l, w.err = l, err
	if err != nil {
		p.live = slices.DeleteFunc(p.live, func(x *waiterLease) bool { return x == w })
	} else {
		w.low = l.since.Add(l.ttl) // no earlier than find's estimate: since >= now, ttl >= secs
	}
	close(w.ready)
}
