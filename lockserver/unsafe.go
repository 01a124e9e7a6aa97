package lockserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// acquireUnsafe is the deliberately broken check-then-set acquire: a
// linearizable Get and, if the lock is absent, an unconditional Put. Two
// acquires that both pass the Get both get the lock.
func (s *Server) acquireUnsafe(ctx context.Context, req acquireRequest, l lease, r *restart, deadline time.Time) (grant, error) {
	if st := s.settle(ctx, &l, r); st != leaseAlive {
		s.dropLease(l, st)
		return grant{}, fmt.Errorf("%w: the lease could not be restarted", ErrUnavailable)
	}
	g, err := s.checkThenSet(ctx, req, &l, deadline)
	switch {
	case errors.Is(err, ErrBusy):
		s.keepLease(l.id, l.ttl)
	case err != nil:
		s.revoke(l.id)
	}
	return g, err
}

// checkThenSet is acquireUnsafe's Get and Put.
func (s *Server) checkThenSet(ctx context.Context, req acquireRequest, l *lease, deadline time.Time) (grant, error) {
	lk := lockKey(req.ResourceID)
	waited := false
	for {
		if err := s.pausePoint(ctx); err != nil {
			return grant{}, err
		}
		cctx, cancel := s.etcdCtx(ctx)
		resp, err := s.kv().Get(cctx, lk, clientv3.WithCountOnly())
		cancel()
		if err != nil {
			return grant{}, s.readErr(err, "get")
		}
		if resp.Count > 0 {
			if req.Timeout <= 0 || !s.cfg.Now().Before(deadline) {
				return grant{}, ErrBusy
			}
			if _, err := s.waitDelete(ctx, lk, deadline); err != nil {
				return grant{}, err
			}
			waited = true
			continue
		}
		if s.cfg.UnsafeGap > 0 {
			if err := s.backoffFor(ctx, s.cfg.UnsafeGap); err != nil {
				return grant{}, err
			}
		}
		if s.unsafeHook != nil {
			s.unsafeHook()
		}
		if waited {
			if err := s.refreshLease(ctx, l); err != nil {
				return grant{}, err
			}
		}
		tok, err := newToken()
		if err != nil {
			return grant{}, fmt.Errorf("lockserver: token: %w", err)
		}
		info := encodeInfo(lockInfo{OwnerID: req.ClientID, TTL: l.ttl.Seconds(), AcquiredAt: l.since.UTC()})
		if err := s.pausePoint(ctx); err != nil {
			return grant{}, err
		}
		cctx, cancel = s.etcdCtx(ctx)
		s.stats.grantTxns.Add(1)
		presp, err := s.kv().Txn(cctx).Then(
			clientv3.OpPut(lk, hashToken(tok), clientv3.WithLease(l.id)),
			clientv3.OpPut(infoKey(req.ResourceID), info, clientv3.WithLease(l.id)),
		).Commit()
		cancel()
		if err != nil {
			return grant{}, s.writeErr(err, "put")
		}
		return grant{Token: tok, Fencing: presp.Header.Revision, ExpiresAt: l.since.Add(l.ttl), TTL: l.ttl}, nil
	}
}

// waitDelete blocks until key is deleted (or is found absent: deleted is
// true), the deadline passes, or the watch fails (then after a short
// backoff); the caller re-checks. Like waitPlace, it watches from etcd's
// current revision and reads the key once the watch exists.
func (s *Server) waitDelete(ctx context.Context, key string, deadline time.Time) (deleted bool, err error) {
	wctx, cancel := context.WithDeadline(withLeader(ctx), deadline)
	defer cancel()
	created := false
	for resp := range s.kv().Watch(wctx, key, clientv3.WithFilterPut(), clientv3.WithCreatedNotify()) {
		if resp.Err() != nil {
			s.stats.etcdErrors.Add(1)
			cancel()
			return false, s.backoff(ctx, deadline)
		}
		if !created && resp.Created {
			created = true
			if err := s.pausePoint(ctx); err != nil {
				return false, err
			}
			cctx, ccancel := s.etcdCtx(ctx)
			get, err := s.kv().Get(cctx, key, clientv3.WithCountOnly())
			ccancel()
			if err != nil {
				s.stats.etcdErrors.Add(1)
				cancel()
				return false, s.backoff(ctx, deadline)
			}
			if get.Count == 0 {
				return true, nil
			}
		}
		for _, ev := range resp.Events {
			if ev.Type == mvccpb.DELETE {
				return true, nil
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return false, nil
}
