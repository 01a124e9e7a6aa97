package lockserver

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// heldBy is the compare that holds while tok holds the lock on id.
func heldBy(id, tok string) clientv3.Cmp {
	return clientv3.Compare(clientv3.Value(lockKey(id)), "=", hashToken(tok))
}

// release ends tok's grant in one txn, iff tok holds the lock, and writes
// the release receipt (on the server's receipt lease) in the same txn.
//
// When the resource has had waiters lately, the txn also hands the lock over
// to the oldest one (handOverOp): the same txn writes that waiter as the
// holder, with the token hash and the lease it registered, and deletes its
// registration; the waiter learns it from its watch of the lock key. One Raft
// write and no lease call: the next holder's server does not have to take
// the lock itself. The head is read just before, from this server's etcd
// member (a serializable read, which may be stale): the txn hands over only
// if that waiter is still registered and still the oldest, and otherwise
// deletes the lock as a plain release does (the actual head, if any, sees
// the deletion and takes the lock itself).
//
// The txn also reads the lock's lease and record, so that the lease, which
// the txn emptied, goes back to the pool (or is revoked), and counts the
// waiters left, which tells this server whether to look for a head next time.
func (s *Server) release(ctx context.Context, req releaseRequest) error {
	if s.cfg.Recipe == RecipeMutex {
		return s.releaseMutex(ctx, req)
	}
	if !validToken(req.LockToken) {
		return ErrNotHeld
	}
	id := req.ResourceID
	var head *registration
	if s.contended.recent(id, s.cfg.Now()) {
		head = s.queueHead(ctx, id)
	}
	for retried := false; ; retried = true {
		receipt, err := s.receiptLease(ctx)
		if err != nil {
			return err
		}
		ops := []clientv3.Op{
			clientv3.OpGet(lockKey(id)), // its lease (a keys-only read has none)
			clientv3.OpGet(infoKey(id)), // its granted TTL, for the pool
			// The receipt tells a watcher that this release, not the
			// lease's expiry, ended the grant.
			clientv3.OpPut(releasedKey(id), hashToken(req.LockToken), clientv3.WithLease(receipt)),
		}
		if head != nil {
			ops = append(ops, handOverOp(id, *head, s.cfg.Now()))
		} else {
			ops = append(ops, clientv3.OpDelete(lockKey(id)), clientv3.OpDelete(infoKey(id)))
		}
		ops = append(ops, clientv3.OpGet(waitersPrefix(id), clientv3.WithPrefix(), clientv3.WithCountOnly()))
		if err := s.pausePoint(ctx); err != nil {
			return err
		}
		cctx, cancel := s.etcdCtx(ctx)
		resp, err := s.kv().Txn(cctx).If(heldBy(id, req.LockToken)).Then(ops...).Commit()
		cancel()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) && !retried {
			// The receipt lease, or the lease the head registered, is gone
			// (etcd applied nothing): a plain release with another receipt lease.
			s.dropReceiptLease(receipt)
			head = nil
			continue
		}
		if err != nil {
			return s.writeErr(err, "release txn")
		}
		if !resp.Succeeded {
			return ErrNotHeld
		}
		if head != nil && resp.Responses[3].GetResponseTxn().GetSucceeded() {
			s.stats.handOvers.Add(1)
		}
		if resp.Responses[len(ops)-1].GetResponseRange().GetCount() > 0 {
			s.contended.note(id, s.cfg.Now())
		}
		s.vacated(resp.Responses[0], resp.Responses[1])
		return nil
	}
}

// handOverOp writes the waiter r as the holder of id, if r is still
// registered and the oldest waiter; otherwise it deletes the lock (a plain
// release). In both branches the previous holder's keys are gone or
// overwritten, so the release is done either way.
//
// The lock key is put, not deleted and created (etcd refuses a delete and a
// put of one key in one txn): it keeps its CreateRevision, and the grant's
// fencing token is the revision of this txn, the ModRevision of the record
// it writes (see InfoPrefix). The record says the lock lasts at least 0
// seconds (Record.Lasts): the lease it goes on is as fresh as the waiter's
// server last restarted it, which only that server knows, and it answers its
// client with what the lease has left.
func handOverOp(id string, r registration, now time.Time) clientv3.Op {
	lk, wp := lockKey(id), waitersPrefix(id)
	var lasts float64
	info := encodeInfo(lockInfo{OwnerID: r.owner, TTL: r.ttl.Seconds(), AcquiredAt: now.UTC(), Lasts: &lasts})
	return clientv3.OpTxn(
		[]clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(r.key), "=", r.rev),
			clientv3.Compare(clientv3.CreateRevision(wp).WithPrefix(), ">", r.rev-1),
		},
		[]clientv3.Op{
			clientv3.OpPut(lk, r.hash, clientv3.WithLease(r.lease)),
			clientv3.OpPut(infoKey(id), info, clientv3.WithLease(r.lease)),
			clientv3.OpDelete(r.key),
		},
		[]clientv3.Op{clientv3.OpDelete(lk), clientv3.OpDelete(infoKey(id))},
	)
}

// queueHead reads the oldest registration queued for id from this server's
// etcd member (serializable: no round to the leader); nil when there is
// none or the read failed (the release is then a plain one).
func (s *Server) queueHead(ctx context.Context, id string) *registration {
	if s.pausePoint(ctx) != nil {
		return nil
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	resp, err := s.kv().Get(cctx, waitersPrefix(id), append(clientv3.WithFirstCreate(), clientv3.WithSerializable())...)
	if err != nil {
		s.stats.etcdErrors.Add(1)
		return nil
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	r, err := decodeRegistration(resp.Kvs[0])
	if err != nil {
		return nil
	}
	return &r
}

// vacated takes back the lease of a lock that a txn just deleted, moved or
// handed over: lk and info are that txn's reads of the lock key and record
// before the change. The lease then carries nothing (a lock's two keys are
// always on the same lease, and nothing else is), so it goes back to the
// pool, or is revoked when its TTL is unknown.
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
