package lockserver

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Leaving the queue: at the deadline, after a failure, or when a lock was
// handed over to an acquire that cannot take it.

// giveUp ends a wait at its deadline: w leaves the queue, in one txn that
// also reads the lock, so a hand-over that came first is not missed (then
// the acquire is answered with it, a little late).
func (s *Server) giveUp(ctx context.Context, req acquireRequest, w *waiter) (grant, error) {
	if s.giveUpHook != nil {
		s.giveUpHook()
	}
	handed, gone, err := s.leave(ctx, w)
	switch {
	case err != nil:
		// w may still be registered, and be handed the lock: revoking its
		// lease makes such a hand-over fail (or ends its lock).
		s.abandon(w, true, leaseUnsettled)
		return grant{}, fmt.Errorf("%w: leaving the queue: %w", ErrOutcomeUnknown, err)
	case handed != nil:
		return s.handedOver(ctx, req, w, handed)
	}
	l, st := s.keeper.forget(ctx, w.lock.id)
	s.keepOrRevoke(l, st)
	if gone {
		// Nobody but a hand-over (or the end of w's claim lease) deletes
		// w's key: w may have held a lock that ended before w saw it.
		w.maybeHanded = true
	}
	if w.maybeHanded {
		return grant{}, errMaybeHanded
	}
	return grant{}, ErrBusy
}

// leave deletes w's waiter key and reads the lock key in the same txn: when
// the lock is w's (a release handed it over, which deleted w's key), handed
// is the lock key. gone reports that w's key was already gone: a hand-over
// deleted it (and the lock it gave w may have ended since: its lease ran
// out), or w's claim lease ended. After leave, no release can hand the lock
// to w.
func (s *Server) leave(ctx context.Context, w *waiter) (handed *mvccpb.KeyValue, gone bool, err error) {
	cctx, cancel := s.cleanupCtx()
	defer cancel()
	if err := s.checkpoint(ctx); err != nil {
		return nil, false, err
	}
	resp, err := s.kv().Txn(cctx).Then(clientv3.OpDelete(w.reg.key), clientv3.OpGet(lockKey(w.res))).Commit()
	if err != nil {
		s.stats.etcdErrors.Add(1)
		return nil, false, err
	}
	gone = resp.Responses[0].GetResponseDeleteRange().Deleted == 0
	if kvs := resp.Responses[1].GetResponseRange().GetKvs(); len(kvs) == 1 && string(kvs[0].Value) == w.reg.hash {
		return kvs[0], gone, nil
	}
	return nil, gone, nil
}

// abandon gives w up in the background, after a failure whose answer need
// not wait: it leaves the queue and disposes of w's lock lease (kept: the
// keeper restarts it; otherwise st is its state). A lock a release handed
// over to w meanwhile is given back (released, which may hand it on); when
// the lease's state is not known, the lease is revoked, which ends such a
// lock too and makes a later hand-over onto it fail.
func (s *Server) abandon(w *waiter, kept bool, st leaseState) {
	s.async(func(ctx context.Context) {
		l := w.lock
		if kept {
			var kst leaseState
			l, kst = s.keeper.forget(ctx, w.lock.id)
			if st == leaseAlive {
				st = kst
			}
		}
		handed, _, err := s.leave(ctx, w)
		switch {
		case st != leaseAlive:
			s.dropLease(l, st)
		case err != nil:
			s.revoke(l.id)
		case handed != nil:
			_ = s.release(ctx, releaseRequest{ResourceID: w.res, LockToken: w.tok})
		default:
			s.keepLease(l.id, l.ttl)
		}
	})
}

// giveBack releases a lock that was handed over to an acquire that cannot
// take it, in the background.
func (s *Server) giveBack(res, tok string) {
	s.async(func(ctx context.Context) {
		_ = s.release(ctx, releaseRequest{ResourceID: res, LockToken: tok})
	})
}
