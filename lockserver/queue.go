package lockserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// waiter is a queued blocking acquire: its key (under the acquire's lease)
// and the key's CreateRevision (its place in the queue).
type waiter struct {
	key string
	rev int64
}

// errWaiterLost: the waiter key vanished (its lease expired); re-register.
var errWaiterLost = errors.New("lockserver: waiter key lost")

// register appends a waiter key under l (re-queueing after the key was lost).
func (s *Server) register(ctx context.Context, req acquireRequest, l lease) (waiter, error) {
	key := waiterKey(req.ResourceID, l.id)
	if err := s.pausePoint(ctx); err != nil {
		return waiter{}, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	resp, err := s.kv().Txn(cctx).Then(queueOps(key, req.ClientID, l.id)...).Commit()
	if err != nil {
		return waiter{}, s.writeErr(err, "register waiter") // acquire revokes l
	}
	return queued(key, resp)
}

// queueOps writes a waiter key under lease and reads it back: its
// CreateRevision is the waiter's place in the queue.
func queueOps(key, clientID string, lease clientv3.LeaseID) []clientv3.Op {
	return []clientv3.Op{
		clientv3.OpPut(key, clientID, clientv3.WithLease(lease)),
		clientv3.OpGet(key, clientv3.WithKeysOnly()),
	}
}

// queued is the waiter that queueOps wrote, from the answer of the txn
// whose (else) branch ran them.
func queued(key string, resp *clientv3.TxnResponse) (waiter, error) {
	kvs := resp.Responses[1].GetResponseRange().GetKvs()
	if len(kvs) != 1 {
		return waiter{}, fmt.Errorf("%w: waiter key missing after its put", ErrOutcomeUnknown)
	}
	return waiter{key: key, rev: kvs[0].CreateRevision}, nil
}

// leave deletes w's waiter key; it reports whether etcd confirmed that the
// key is gone.
func (s *Server) leave(w waiter) bool {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.EtcdTimeout)
	defer cancel()
	if s.checkpoint(ctx) != nil {
		return false
	}
	_, err := s.kv().Delete(ctx, w.key)
	return err == nil
}

// waitTurn waits without polling until w is the oldest waiter and the lock is
// free, then makes one grant attempt. The head watches the lock key; every
// other waiter watches only its predecessor, so a release wakes one waiter.
// A head that saw the lock deleted tries at once, without re-reading: the
// grant txn's compares decide, and a failed attempt reads again.
func (s *Server) waitTurn(ctx context.Context, req acquireRequest, l *lease, w waiter, deadline time.Time) (grant, error) {
	lk := lockKey(req.ResourceID)
	freed := false // the head saw the lock deleted
	for {
		if !s.cfg.Now().Before(deadline) {
			return grant{}, ErrBusy
		}
		if !s.cfg.Now().Before(refreshAt(*l)) { // keep w's key (and l) alive
			err := s.keepAlive(ctx, l)
			switch {
			case errors.Is(err, ErrUnavailable):
				return grant{}, err
			case errors.Is(err, rpctypes.ErrLeaseNotFound):
				return grant{}, errWaiterLost
			case err != nil:
				s.stats.etcdErrors.Add(1)
				if err := s.backoff(ctx, deadline); err != nil {
					return grant{}, err
				}
				continue
			}
		}
		watch := ""
		if !freed {
			var err error
			if watch, err = s.queuePlace(ctx, req, w); err != nil {
				if errors.Is(err, errWaiterLost) || errors.Is(err, ErrUnavailable) {
					return grant{}, err
				}
				if err := s.backoff(ctx, deadline); err != nil {
					return grant{}, err
				}
				continue
			}
		}
		freed = false
		if watch == "" { // head of the queue and the lock is free
			if err := s.refreshLease(ctx, l); err != nil {
				return grant{}, err
			}
			g, ok, lost, err := s.tryGrant(ctx, req, *l, &w)
			switch {
			case err != nil || ok:
				return g, err
			case lost:
				return grant{}, errWaiterLost
			}
			continue
		}
		deleted, err := s.waitDelete(ctx, watch, minTime(deadline, refreshAt(*l)))
		if err != nil {
			return grant{}, err
		}
		freed = deleted && watch == lk
	}
}

// refreshAt is when a waiting acquire restarts its lease: after a third of
// its TTL, like etcd's own keep-alive.
func refreshAt(l lease) time.Time { return l.since.Add(l.ttl / 3) }

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// queuePlace reads, in one linearizable txn, what w waits for: its
// predecessor's key, the lock key when w is the head and the lock is held,
// or "" when w is the head and the lock is free. errWaiterLost: w's key is gone.
func (s *Server) queuePlace(ctx context.Context, req acquireRequest, w waiter) (string, error) {
	lk, wp := lockKey(req.ResourceID), waitersPrefix(req.ResourceID)
	if err := s.pausePoint(ctx); err != nil {
		return "", err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	resp, err := s.kv().Txn(cctx).Then(
		clientv3.OpGet(lk, clientv3.WithCountOnly()),
		clientv3.OpGet(wp, append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(w.rev-1), clientv3.WithKeysOnly())...),
		clientv3.OpGet(w.key, clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		s.stats.etcdErrors.Add(1)
		return "", err
	}
	if resp.Responses[2].GetResponseRange().Count == 0 {
		return "", errWaiterLost
	}
	if preds := resp.Responses[1].GetResponseRange().Kvs; len(preds) > 0 {
		return string(preds[0].Key), nil
	}
	if resp.Responses[0].GetResponseRange().Count > 0 {
		return lk, nil
	}
	return "", nil
}

// waitDelete blocks until key is deleted (or is found absent: deleted is
// true), the deadline passes, or the watch fails (then after a short
// backoff). The caller re-reads or, when deleted, may act at once.
//
// The watch starts at etcd's current revision, not at the revision of the
// caller's read: a watch that starts in the past is "unsynced" and etcd
// catches it up in a loop that runs every 100 ms, which under contention
// (the revision moves between the read and the watch) would delay every
// hand-over by up to 100 ms. Once the watch is created, one linearizable read
// checks that key still exists, so a delete between the caller's read and
// the watch's start is not missed.
func (s *Server) waitDelete(ctx context.Context, key string, deadline time.Time) (deleted bool, err error) {
	wctx, cancel := context.WithDeadline(clientv3.WithRequireLeader(ctx), deadline)
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
	return false, nil // deadline (or watch closed): the caller re-checks
}
