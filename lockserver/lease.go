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

// takeLease returns a lease of at least ttl whose TTL has just been
// (re)started: a kept one from the pool, restarted with KeepAliveOnce (no
// Raft write), or a new grant.
func (s *Server) takeLease(ctx context.Context, ttl time.Duration) (lease, error) {
	secs := s.ttlSeconds(ttl)
	for {
		id, ok := s.pool.get(secs, s.cfg.Now())
		if !ok {
			return s.grantLease(ctx, ttl)
		}
		l := lease{id: id, ttl: time.Duration(secs) * time.Second}
		err := s.keepAlive(ctx, &l)
		if err == nil {
			s.stats.leaseReuses.Add(1)
			return l, nil
		}
		switch {
		case errors.Is(err, ErrUnavailable): // paused and cancelled: nothing was sent
			s.keepLease(id, l.ttl)
			return lease{}, err
		case !errors.Is(err, rpctypes.ErrLeaseNotFound):
			return lease{}, s.readErr(err, "lease keepalive") // the kept lease is left to expire
		}
	}
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
