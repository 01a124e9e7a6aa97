package lockserver

import (
	"context"
	"errors"
	"math"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// lease is an etcd lease with its granted TTL. since is the time just before
// the request that started (or last refreshed) the TTL was sent, so since+ttl
// is a lower bound of the lease's expiry: expiresAt never promises too much.
type lease struct {
	id    clientv3.LeaseID
	ttl   time.Duration
	since time.Time
}

// ttlSeconds is the TTL in whole seconds a lease for ttl is granted with:
// ttl rounded up, and at least etcd's minimum once a grant has revealed it.
func (s *Server) ttlSeconds(ttl time.Duration) int64 {
	return max(int64(math.Ceil(ttl.Seconds())), 1, s.minTTL.Load())
}

// takeLease returns a lease of the granted TTL for ttl: a kept one from
// the pool, restarted now (r is that restart: its answer is awaited with
// settle, after the txn that uses the lease was sent), or a new grant (r is
// nil). l.since is when the restart or grant was sent: the lease lives at
// least l.ttl from then once settle succeeded.
func (s *Server) takeLease(ctx context.Context, ttl time.Duration) (l lease, r *restart, err error) {
	secs := s.ttlSeconds(ttl)
	for {
		id, ok := s.pool.get(secs, s.cfg.Now())
		if !ok {
			l, err := s.grantLease(ctx, ttl)
			return l, nil, err
		}
		l = lease{id: id, ttl: time.Duration(secs) * time.Second}
		if err := s.pausePoint(ctx); err != nil {
			s.keepLease(id, l.ttl) // nothing was sent
			return lease{}, nil, err
		}
		s.stats.leaseReuses.Add(1)
		if r, err := s.keeper.send(id); err == nil {
			l.since = r.sent
			return l, r, nil
		}
		// No keep-alive stream now: restart it and wait, as before there was one.
		err := s.keepAlive(ctx, &l)
		switch {
		case err == nil:
			return l, nil, nil
		case errors.Is(err, ErrUnavailable): // paused and cancelled: nothing was sent
			s.keepLease(id, l.ttl)
			return lease{}, nil, err
		case !errors.Is(err, rpctypes.ErrLeaseNotFound):
			return lease{}, nil, s.readErr(err, "lease keepalive") // the kept lease is left to expire
		}
	}
}

// leaseState is the outcome of a lease restart that was sent with a txn.
type leaseState int

const (
	leaseAlive     leaseState = iota // restarted: the lease lives at least l.ttl from l.since
	leaseGone                        // etcd has no such lease (it expired while kept)
	leaseUnsettled                   // no answer: the restart may still apply (the lease must be revoked)
)

// settle waits for r, the restart of l sent by takeLease, and updates l
// from its answer. A nil r (a new grant) is alive.
func (s *Server) settle(ctx context.Context, l *lease, r *restart) leaseState {
	if r == nil {
		return leaseAlive
	}
	ttl, ok := s.keeper.wait(ctx, r)
	switch {
	case !ok:
		return leaseUnsettled
	case ttl <= 0:
		return leaseGone
	}
	l.ttl, l.since = ttl, r.sent
	return leaseAlive
}

// keepLease gives the lease of a lock that is gone, moved or never written
// back to the pool, or revokes it when there is no room.
func (s *Server) keepLease(id clientv3.LeaseID, ttl time.Duration) {
	if id == 0 {
		return
	}
	if !s.pool.put(id, int64(ttl/time.Second), s.cfg.Now()) {
		s.revoke(id)
	}
}

// grantLease grants a lease of at least ttl (etcd rounds up to whole seconds
// and to its minimum TTL; the returned ttl is the true granted one).
func (s *Server) grantLease(ctx context.Context, ttl time.Duration) (lease, error) {
	secs := s.ttlSeconds(ttl)
	if err := s.pausePoint(ctx); err != nil {
		return lease{}, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	since := s.cfg.Now()
	s.stats.leaseGrants.Add(1)
	resp, err := s.kv().Grant(cctx, secs)
	if err != nil {
		return lease{}, s.readErr(err, "lease grant") // a lease alone holds no lock
	}
	if resp.TTL > secs {
		s.minTTL.Store(resp.TTL) // etcd's minimum TTL: ask for it from now on
	}
	return lease{id: resp.ID, ttl: time.Duration(resp.TTL) * time.Second, since: since}, nil
}

// keepAlive restarts l's TTL with KeepAliveOnce, answered by the leader
// without a Raft write. Errors are etcd's (rpctypes.ErrLeaseNotFound when the
// lease is gone).
func (s *Server) keepAlive(ctx context.Context, l *lease) error {
	if err := s.pausePoint(ctx); err != nil {
		return err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	since := s.cfg.Now()
	resp, err := s.kv().KeepAliveOnce(cctx, l.id)
	if err != nil {
		return err
	}
	l.ttl, l.since = time.Duration(resp.TTL)*time.Second, since
	return nil
}

// refreshLease restarts l's TTL (or grants a new lease if it expired) right
// before a grant attempt, so that expiresAt is measured from now.
func (s *Server) refreshLease(ctx context.Context, l *lease) error {
	err := s.keepAlive(ctx, l)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnavailable):
		return err // paused and cancelled: nothing was sent
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		nl, err := s.grantLease(ctx, l.ttl)
		if err != nil {
			return err
		}
		*l = nl
		return nil
	default:
		return s.readErr(err, "lease keepalive")
	}
}

// revoke revokes a lease in the background (never needed for correctness).
func (s *Server) revoke(id clientv3.LeaseID) {
	if id == 0 {
		return
	}
	s.async(func(ctx context.Context) {
		if s.checkpoint(ctx) == nil {
			_, _ = s.kv().Revoke(ctx, id)
		}
	})
}
