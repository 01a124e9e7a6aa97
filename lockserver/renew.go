package lockserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// renewAttempts bounds how often a renew re-reads a lock that another renew
// of the same token moved between its read and its txn.
const renewAttempts = 3

// holding is a held lock as renew read it: the lease it is on, its fencing
// token (see FencingOf) and its record.
type holding struct {
	lease   clientv3.LeaseID
	fencing int64
	info    lockInfo
	ttl     time.Duration // the granted TTL of lease
}

// renew gives the lock the TTL req asks for (the TTL in effect when it asks
// for none), keeping its fencing token and its lockToken.
//
// etcd cannot change a lease's TTL, and restarting the lock's lease is not
// safe: between a check of ownership and an unguarded KeepAliveOnce, the
// lock may be released and its lease reused (the pool) for another lock,
// which the keep-alive would then extend. So a renew moves the lock instead:
// one txn, guarded by the token's hash and the lease the lock is on, puts
// the lock key and record on a lease of the asked TTL, taken from this
// server's pool or granted. The record it writes names the fencing token
// (Record.Fencing), so the token does not change. The guard makes the txn change nothing when
// the lock is no longer the token's (409 not_holder), and the lease it
// leaves behind carries nothing afterwards, so it goes back to the pool.
//
// A renew never shortens a lock: when the asked TTL is shorter than the one
// in effect and the lease's remaining TTL already covers it, the lock stays
// where it is and the answer reports that remaining TTL.
func (s *Server) renew(ctx context.Context, req renewRequest) (grant, error) {
	if s.cfg.Recipe == RecipeMutex {
		return s.renewMutex(ctx, req)
	}
	if !validToken(req.LockToken) {
		return grant{}, ErrNotHeld
	}
	for range renewAttempts {
		cur, err := s.holdingOf(ctx, req)
		if err != nil {
			return grant{}, err
		}
		if s.renewHook != nil {
			s.renewHook()
		}
		ttl := req.TTL
		if ttl == 0 {
			ttl = cur.ttl
		}
		ttl = time.Duration(s.ttlSeconds(ttl)) * time.Second // as a lease would grant it
		if ttl < cur.ttl {
			g, ok, err := s.renewInPlace(ctx, req, cur, ttl)
			if err != nil || ok {
				return g, err
			}
		}
		g, moved, err := s.moveLock(ctx, req, cur, ttl)
		if err != nil || moved {
			return g, err
		}
		// The guard failed: the lock is gone, or another renew moved it.
	}
	return grant{}, fmt.Errorf("%w: renew: the lock kept moving to other leases", ErrUnavailable)
}

// holdingOf reads linearizably the lock req's token holds; ErrNotHeld when
// it holds none.
func (s *Server) holdingOf(ctx context.Context, req renewRequest) (holding, error) {
	if err := s.pausePoint(ctx); err != nil {
		return holding{}, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	resp, err := s.kv().Txn(cctx).If(heldBy(req.ResourceID, req.LockToken)).
		Then(clientv3.OpGet(lockKey(req.ResourceID)), clientv3.OpGet(infoKey(req.ResourceID))).Commit() // not keys-only: that has no lease
	if err != nil {
		return holding{}, s.readErr(err, "renew read")
	}
	if !resp.Succeeded {
		return holding{}, ErrNotHeld
	}
	lks, infos := resp.Responses[0].GetResponseRange().GetKvs(), resp.Responses[1].GetResponseRange().GetKvs()
	if len(lks) != 1 {
		return holding{}, ErrNotHeld
	}
	h := holding{lease: clientv3.LeaseID(lks[0].Lease)}
	if len(infos) != 1 {
		return holding{}, fmt.Errorf("lockserver: lock %q has no record", req.ResourceID)
	}
	rec, err := DecodeRecord(infos[0].Value)
	if err != nil {
		return holding{}, err
	}
	h.fencing = FencingOf(infos[0], rec)
	h.info = lockInfo{OwnerID: rec.OwnerID, TTL: rec.TTL.Seconds(), AcquiredAt: rec.AcquiredAt}
	h.ttl = rec.TTL
	return h, nil
}

// renewInPlace answers a renew that asks for less than the TTL in effect
// without touching etcd's state, when the lock's lease still has at least
// ttl left. ok is false when it has less (the caller moves the lock). The
// lease's remaining TTL is read first and the lock is found on that lease
// after: a lease's expiry only ever moves later, so the lock lives at least
// as long as was read.
func (s *Server) renewInPlace(ctx context.Context, req renewRequest, cur holding, ttl time.Duration) (g grant, ok bool, err error) {
	if err := s.pausePoint(ctx); err != nil {
		return grant{}, false, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	since := s.cfg.Now()
	left, err := s.kv().TimeToLive(cctx, cur.lease)
	if err != nil {
		return grant{}, false, s.readErr(err, "lease ttl")
	}
	remaining := time.Duration(left.TTL) * time.Second // whole seconds, rounded down
	if remaining < ttl {
		return grant{}, false, nil
	}
	if err := s.pausePoint(ctx); err != nil {
		return grant{}, false, err
	}
	resp, err := s.kv().Txn(cctx).If(heldBy(req.ResourceID, req.LockToken),
		clientv3.Compare(clientv3.LeaseValue(lockKey(req.ResourceID)), "=", cur.lease)).Commit()
	if err != nil {
		return grant{}, false, s.readErr(err, "renew check")
	}
	if !resp.Succeeded {
		return grant{}, false, nil
	}
	return grant{Token: req.LockToken, Fencing: cur.fencing, ExpiresAt: since.Add(remaining), TTL: remaining}, true, nil
}

// moveLock puts the lock's key and record on a lease of ttl in one txn
// guarded by the token's hash and the lease the lock is on (cur). moved is
// false when the guard failed (nothing changed).
func (s *Server) moveLock(ctx context.Context, req renewRequest, cur holding, ttl time.Duration) (g grant, moved bool, err error) {
	l, r, err := s.takeLease(ctx, ttl)
	if err != nil {
		return grant{}, false, err
	}
	// The restart must be answered before the lock moves: a lease that
	// expired in between would end the lock early.
	if st := s.settle(ctx, &l, r); st != leaseAlive {
		s.dropLease(l, st)
		return grant{}, false, nil // the caller tries again
	}
	info := cur.info
	info.TTL = l.ttl.Seconds()
	info.Fencing = cur.fencing
	info.Lasts = nil
	lk := lockKey(req.ResourceID)
	if err := s.pausePoint(ctx); err != nil {
		s.keepLease(l.id, l.ttl)
		return grant{}, false, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	resp, err := s.kv().Txn(cctx).If(heldBy(req.ResourceID, req.LockToken),
		clientv3.Compare(clientv3.LeaseValue(lk), "=", cur.lease)).
		Then(clientv3.OpPut(lk, hashToken(req.LockToken), clientv3.WithLease(l.id)),
			clientv3.OpPut(infoKey(req.ResourceID), encodeInfo(info), clientv3.WithLease(l.id))).Commit()
	if err != nil {
		err = s.writeErr(err, "renew txn")
		if errors.Is(err, ErrUnavailable) {
			s.keepLease(l.id, l.ttl) // not applied: l carries nothing
		}
		// Otherwise either lease may hold the lock now: both are left to
		// expire, neither is pooled or revoked.
		return grant{}, false, err
	}
	if !resp.Succeeded {
		s.keepLease(l.id, l.ttl)
		return grant{}, false, nil
	}
	s.keepLease(cur.lease, cur.ttl) // the txn emptied it
	return grant{Token: req.LockToken, Fencing: cur.fencing, ExpiresAt: l.since.Add(l.ttl), TTL: l.ttl}, true, nil
}
