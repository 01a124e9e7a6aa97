package lockserver

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ownedBy are the compares that hold when tok holds the lock on id.
func ownedBy(id, tok string, leaseID clientv3.LeaseID) []clientv3.Cmp {
	lk := lockKey(id)
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.Value(lk), "=", hashToken(tok)),
		clientv3.Compare(clientv3.LeaseValue(lk), "=", leaseID),
	}
}

// release deletes the lock in one compare-and-delete txn iff tok holds it.
// The lock's lease then goes back to the pool (or is revoked).
func (s *Server) release(ctx context.Context, req releaseRequest) error {
	leaseID, ok := parseToken(req.LockToken)
	if !ok {
		return ErrNotHeld
	}
	if err := s.pausePoint(ctx); err != nil {
		return err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	resp, err := s.kv().Txn(cctx).If(ownedBy(req.ResourceID, req.LockToken, leaseID)...).
		Then(clientv3.OpGet(infoKey(req.ResourceID)), // its granted TTL, for the pool
			clientv3.OpDelete(lockKey(req.ResourceID)), clientv3.OpDelete(infoKey(req.ResourceID)),
			// A receipt under the same lease: it tells a watcher that this
			// release, not the lease's expiry, ended the grant. The next
			// grant of the resource deletes it.
			clientv3.OpPut(releasedKey(req.ResourceID), hashToken(req.LockToken), clientv3.WithLease(leaseID))).Commit()
	if err != nil {
		return s.writeErr(err, "release txn")
	}
	if !resp.Succeeded {
		return ErrNotHeld
	}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
		if rec, err := DecodeRecord(kvs[0].Value); err == nil && rec.TTL > 0 {
			s.keepLease(leaseID, rec.TTL)
			return nil
		}
	}
	s.revoke(leaseID)
	return nil
}
