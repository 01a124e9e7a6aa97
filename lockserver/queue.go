package lockserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// waiter is a queued blocking acquire: its key, the key's lease, and the
// key's CreateRevision (its place in the queue; 0 until it is written).
type waiter struct {
	key   string
	lease lease
	rev   int64
}

// errWaiterLost: the waiter key vanished; re-register.
var errWaiterLost = errors.New("lockserver: waiter key lost")

// newWaiter names a waiter key of an acquire that waits until deadline,
// on a waiter lease that outlives the deadline by at most waiterSlack (see
// waiterLeases): nothing keeps it alive, and a waiter whose server crashed
// or froze leaves the queue soon after its timeout.
func (s *Server) newWaiter(ctx context.Context, req acquireRequest, deadline time.Time) (waiter, error) {
	wl, err := s.waiterLease(ctx, deadline)
	if err != nil {
		return waiter{}, err
	}
	return waiter{key: waiterKey(req.ResourceID, wl.id), lease: wl}, nil
}

// wait waits for w's turn until the deadline. A waiter that does not get the
// lock deletes its key (its lease is shared, and ends it anyway soon after
// the deadline).
func (s *Server) wait(ctx context.Context, req acquireRequest, l *lease, w waiter, deadline time.Time) (grant, error) {
	for {
		g, err := s.waitTurn(ctx, req, l, w, deadline)
		switch {
		case err == nil:
			return g, nil // the grant txn deleted w's key
		case errors.Is(err, ErrBusy):
			s.leave(w) // before answering: a 409 leaves no waiter behind
			return grant{}, err
		case !errors.Is(err, errWaiterLost):
			s.leaveLater(w)
			return grant{}, err
		}
		// w's key is gone: queue again.
		if !s.cfg.Now().Before(deadline) {
			return grant{}, ErrBusy
		}
		if w, err = s.newWaiter(ctx, req, deadline); err != nil {
			return grant{}, err
		}
		if err := s.register(ctx, req, &w); err != nil {
			s.leaveLater(w)
			return grant{}, err
		}
	}
}

// register appends w's key to the queue (re-queueing after a key was lost).
func (s *Server) register(ctx context.Context, req acquireRequest, w *waiter) error {
	if err := s.pausePoint(ctx); err != nil {
		return err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	resp, err := s.kv().Txn(cctx).Then(queueOps(*w, req.ClientID)...).Commit()
	if err != nil {
		return s.writeErr(err, "register waiter")
	}
	return queued(w, resp)
}

// queueOps writes w's key on w's lease and reads it back: its
// CreateRevision is the waiter's place in the queue.
func queueOps(w waiter, clientID string) []clientv3.Op {
	return []clientv3.Op{
		clientv3.OpPut(w.key, clientID, clientv3.WithLease(w.lease.id)),
		clientv3.OpGet(w.key, clientv3.WithKeysOnly()),
	}
}

// queued sets w's place in the queue from the answer of the txn whose
// (else) branch ran queueOps.
func queued(w *waiter, resp *clientv3.TxnResponse) error {
	kvs := resp.Responses[1].GetResponseRange().GetKvs()
	if len(kvs) != 1 {
		return fmt.Errorf("%w: waiter key missing after its put", ErrOutcomeUnknown)
	}
	w.rev = kvs[0].CreateRevision
	return nil
}

// leave deletes w's waiter key; it reports whether etcd confirmed that the
// key is gone. A failure is harmless: the key's lease ends it soon after the
// waiter's deadline.
func (s *Server) leave(w waiter) bool {
	ctx, cancel := s.cleanupCtx()
	defer cancel()
	if s.checkpoint(ctx) != nil {
		return false
	}
	_, err := s.kv().Delete(ctx, w.key)
	return err == nil
}

// leaveLater deletes w's waiter key in the background (after a failure whose
// answer need not wait for it).
func (s *Server) leaveLater(w waiter) {
	s.async(func(context.Context) { s.leave(w) })
}

// waitTurn waits without polling until w is the oldest waiter and the lock is
// free, then makes one grant attempt. The head watches the lock key; every
// other waiter watches only its predecessor, so a release wakes one waiter.
// A head that saw the lock deleted tries at once, without re-reading: the
// grant txn's compares decide, and a failed attempt reads again. l, the
// lock's lease, is restarted (or replaced, if it expired during a long wait)
// right before each grant attempt.
func (s *Server) waitTurn(ctx context.Context, req acquireRequest, l *lease, w waiter, deadline time.Time) (grant, error) {
	lk := lockKey(req.ResourceID)
	freed := false // the head saw the lock deleted
	for {
		if !s.cfg.Now().Before(deadline) {
			return grant{}, ErrBusy
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
		deleted, err := s.waitDelete(ctx, watch, deadline)
		if err != nil {
			return grant{}, err
		}
		freed = deleted && watch == lk
	}
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
