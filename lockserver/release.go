package lockserver

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// heldBy is the compare that holds while tok holds the lock on id.
func heldBy(id, tok string) clientv3.Cmp {
	return clientv3.Compare(clientv3.Value(lockKey(id)), "=", hashToken(tok))
}

// release deletes the lock in one compare-and-delete txn iff tok holds it,
// and writes the release receipt (on the server's receipt lease) in the same
// txn. The txn also reads the lock's lease and record, so the lease, which
// the txn emptied, goes back to the pool (or is revoked).
func (s *Server) release(ctx context.Context, req releaseRequest) error {
	if s.cfg.Recipe == RecipeMutex {
		return s.releaseMutex(ctx, req)
	}
	if !validToken(req.LockToken) {
		return ErrNotHeld
	}
	id := req.ResourceID
	for retried := false; ; retried = true {
		receipt, err := s.receiptLease(ctx)
		if err != nil {
			return err
		}
		if err := s.pausePoint(ctx); err != nil {
			return err
		}
		cctx, cancel := s.etcdCtx(ctx)
		resp, err := s.kv().Txn(cctx).If(heldBy(id, req.LockToken)).
			Then(clientv3.OpGet(lockKey(id)), // its lease (a keys-only read has none)
				clientv3.OpGet(infoKey(id)), // its granted TTL, for the pool
				clientv3.OpDelete(lockKey(id)), clientv3.OpDelete(infoKey(id)),
				// The receipt tells a watcher that this release, not the
				// lease's expiry, ended the grant.
				clientv3.OpPut(releasedKey(id), hashToken(req.LockToken), clientv3.WithLease(receipt))).Commit()
		cancel()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) && !retried {
			// The receipt lease is gone (etcd applied nothing): take another.
			s.dropReceiptLease(receipt)
			continue
		}
		if err != nil {
			return s.writeErr(err, "release txn")
		}
		if !resp.Succeeded {
			return ErrNotHeld
		}
		s.vacated(resp.Responses[0], resp.Responses[1])
		return nil
	}
}

// vacated takes back the lease of a lock that a txn just deleted or moved:
// lk and info are that txn's reads of the lock key and record before the
// change. The lease then carries nothing (a lock's two keys are always on
// the same lease, and nothing else is), so it goes back to the pool, or is
// revoked when its TTL is unknown.
func (s *Server) vacated(lk, info *etcdserverpb.ResponseOp) {
	kvs := lk.GetResponseRange().GetKvs()
	if len(kvs) != 1 || kvs[0].Lease == 0 {
		return
	}
	leaseID := clientv3.LeaseID(kvs[0].Lease)
	if infos := info.GetResponseRange().GetKvs(); len(infos) == 1 {
		if rec, err := DecodeRecord(infos[0].Value); err == nil && rec.TTL > 0 {
			s.keepLease(leaseID, rec.TTL)
			return
		}
	}
	s.revoke(leaseID)
}
