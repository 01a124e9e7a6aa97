package lockserver

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// renew verifies that tok holds the lock, restarts the lease's TTL (etcd
// cannot change a lease's TTL: the granted TTL is restored whatever ttl was
// asked) and verifies again. The first check keeps a stale token from
// restarting a lease that a released lock left to the pool and that now
// backs another lock; the second makes the answer true after the restart.
func (s *Server) renew(ctx context.Context, req renewRequest) (grant, error) {
	leaseID, ok := parseToken(req.LockToken)
	if !ok {
		return grant{}, ErrNotHeld
	}
	held, _, err := s.owns(ctx, req, leaseID)
	switch {
	case errors.Is(err, ErrUnavailable):
		return grant{}, err
	case err != nil:
		return grant{}, s.readErr(err, "verify before keepalive")
	}
	if !held {
		return grant{}, ErrNotHeld
	}
	l := lease{id: leaseID}
	err = s.keepAlive(ctx, &l)
	switch {
	case errors.Is(err, ErrUnavailable):
		return grant{}, err // paused and cancelled: nothing was sent
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return grant{}, ErrNotHeld
	case err != nil:
		return grant{}, s.writeErr(err, "lease keepalive")
	}
	held, fencing, err := s.owns(ctx, req, leaseID)
	if err != nil {
		s.stats.etcdErrors.Add(1)
		return grant{}, fmt.Errorf("%w: verify after keepalive: %w", ErrOutcomeUnknown, err)
	}
	if !held {
		return grant{}, ErrNotHeld
	}
	return grant{Token: req.LockToken, Fencing: fencing, ExpiresAt: l.since.Add(l.ttl), TTL: l.ttl}, nil
}

// owns reads linearizably whether req's token holds the lock, and its
// fencing token.
func (s *Server) owns(ctx context.Context, req renewRequest, leaseID clientv3.LeaseID) (bool, int64, error) {
	if err := s.pausePoint(ctx); err != nil {
		return false, 0, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	resp, err := s.kv().Txn(cctx).If(ownedBy(req.ResourceID, req.LockToken, leaseID)...).
		Then(clientv3.OpGet(lockKey(req.ResourceID), clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return false, 0, err
	}
	if !resp.Succeeded {
		return false, 0, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return false, 0, nil
	}
	return true, kvs[0].CreateRevision, nil
}
