package lockserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// grant is a successful acquire or renew.
type grant struct {
	Token     string
	Fencing   int64
	ExpiresAt time.Time
	TTL       time.Duration
}

// errRetryLease: the lease an acquire took was gone when its txn was
// applied, so etcd applied nothing; the acquire starts again with another.
var errRetryLease = errors.New("lockserver: the acquire's lease is gone")

// maxLeaseRetries bounds how often one acquire starts again after its lease
// turned out to be gone (a pooled lease can expire while it is kept).
const maxLeaseRetries = 3

// acquire grants the lock or fails with ErrBusy, ErrUnavailable or
// ErrOutcomeUnknown. Every path disposes of the lease it took: it carries
// the lock, goes back to the pool (it carries nothing), or is revoked (its
// state is unknown, which also undoes a grant whose outcome is unknown).
func (s *Server) acquire(ctx context.Context, req acquireRequest) (grant, error) {
	if s.cfg.Recipe == RecipeMutex {
		return s.acquireMutex(ctx, req)
	}
	deadline := s.cfg.Now().Add(req.Timeout)
	for try := 0; ; try++ {
		l, r, err := s.takeLease(ctx, req.TTL)
		if err != nil {
			return grant{}, err
		}
		var g grant
		switch {
		case s.cfg.Unsafe == UnsafeCheckThenSet:
			g, err = s.acquireUnsafe(ctx, req, l, r, deadline)
		case req.Timeout <= 0:
			g, err = s.tryOnce(ctx, req, l, r)
		default:
			g, err = s.acquireOrQueue(ctx, req, l, r, deadline)
		}
		if errors.Is(err, errRetryLease) && try < maxLeaseRetries {
			continue
		}
		if errors.Is(err, errRetryLease) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return g, err
	}
}

// tryOnce is an acquire with timeout 0: one grant txn, sent together with
// the restart of its pooled lease.
func (s *Server) tryOnce(ctx context.Context, req acquireRequest, l lease, r *restart) (grant, error) {
	tok, err := newToken()
	if err != nil {
		s.keepOrRevoke(l, s.settle(ctx, &l, r))
		return grant{}, fmt.Errorf("lockserver: token: %w", err)
	}
	ok, resp, err := s.grantTxn(ctx, req, l, tok, nil, nil)
	return s.granted(l, s.settle(ctx, &l, r), tok, resp, ok, err)
}

// granted turns a grant txn's outcome (resp, ok, err) and its lease's restart
// (st) into the acquire's answer, and disposes of the lease: a granted lock
// keeps it, an unsettled restart revokes it (undoing a grant), a refused
// acquire gives it back to the pool.
func (s *Server) granted(l lease, st leaseState, tok string, resp *clientv3.TxnResponse, ok bool, err error) (grant, error) {
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		s.dropLease(l, st)
		return grant{}, errRetryLease // etcd applied nothing
	case err != nil:
		s.revoke(l.id) // undoes a grant whose outcome is unknown
		return grant{}, err
	case ok && st == leaseAlive:
		return grant{Token: tok, Fencing: resp.Header.Revision, ExpiresAt: l.since.Add(l.ttl), TTL: l.ttl}, nil
	case ok:
		// Granted, but the lease is gone or its restart unsettled: the lock
		// may already be gone, or last less than promised.
		s.dropLease(l, st)
		return grant{}, fmt.Errorf("%w: the lock's lease could not be restarted", ErrOutcomeUnknown)
	default:
		s.keepOrRevoke(l, st)
		return grant{}, ErrBusy
	}
}

// keepOrRevoke disposes of a lease that carries nothing: back to the pool
// when alive, revoked when its restart is unsettled, dropped when gone.
func (s *Server) keepOrRevoke(l lease, st leaseState) {
	if st == leaseAlive {
		s.keepLease(l.id, l.ttl)
		return
	}
	s.dropLease(l, st)
}

// dropLease forgets a lease that must not be reused: revoked when its
// restart is unsettled (a revoked lease cannot be restarted later).
func (s *Server) dropLease(l lease, st leaseState) {
	if st != leaseGone {
		s.revoke(l.id)
	}
}

// grantTxn is the grant txn with token tok on lease l: it writes the lock
// only if it is absent and no waiter older than w is queued (w == nil: no
// waiter at all); a waiter's grant also deletes its key. els runs when the
// grant fails; resp is the txn's answer. The grant's fencing token is
// resp.Header.Revision. A failed commit is classified by writeErr (it wraps
// etcd's error: rpctypes.ErrLeaseNotFound means nothing was applied).
func (s *Server) grantTxn(ctx context.Context, req acquireRequest, l lease, tok string, w *registration, els []clientv3.Op) (bool, *clientv3.TxnResponse, error) {
	lk, wp := lockKey(req.ResourceID), waitersPrefix(req.ResourceID)
	info := encodeInfo(lockInfo{OwnerID: req.ClientID, TTL: l.ttl.Seconds(), AcquiredAt: s.cfg.Now().UTC()})
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(lk), "=", 0)}
	ops := []clientv3.Op{
		clientv3.OpPut(lk, hashToken(tok), clientv3.WithLease(l.id)),
		clientv3.OpPut(infoKey(req.ResourceID), info, clientv3.WithLease(l.id)),
		// The previous release's receipt has been seen by any watcher (it
		// is in the revision history): a held lock has none.
		clientv3.OpDelete(releasedKey(req.ResourceID)),
	}
	if w == nil {
		// An empty range compares as a zero KeyValue: CreateRevision 0.
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(wp).WithPrefix(), "=", 0))
	} else {
		// Over a range every key must match: no waiter older than w.
		cmps = append(cmps,
			clientv3.Compare(clientv3.CreateRevision(wp).WithPrefix(), ">", w.rev-1),
			clientv3.Compare(clientv3.CreateRevision(w.key), "=", w.rev))
		ops = append(ops, clientv3.OpDelete(w.key))
	}
	if err := s.pausePoint(ctx); err != nil {
		return false, nil, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	s.stats.grantTxns.Add(1)
	resp, err := s.kv().Txn(cctx).If(cmps...).Then(ops...).Else(els...).Commit()
	if err != nil {
		return false, nil, s.writeErr(err, "grant txn")
	}
	return resp.Succeeded, resp, nil
}

// acquireOrQueue is a blocking acquire's first try. On a resource that had
// waiters lately it is one txn that grants the lock if it is free and nobody
// is queued, and otherwise registers the acquire in the queue (its else
// branch), with all a release needs to hand the lock over to it. On any
// other resource it is a plain grant txn, and only if the lock is held does
// a second txn register the acquire: most blocking acquires of free locks
// then cost what a try-once acquire costs. Then it waits its turn.
func (s *Server) acquireOrQueue(ctx context.Context, req acquireRequest, l lease, r *restart, deadline time.Time) (grant, error) {
	if !s.contended.recent(req.ResourceID, s.cfg.Now()) {
		tok, err := newToken()
		if err != nil {
			s.keepOrRevoke(l, s.settle(ctx, &l, r))
			return grant{}, fmt.Errorf("lockserver: token: %w", err)
		}
		ok, resp, err := s.grantTxn(ctx, req, l, tok, nil, nil)
		st := s.settle(ctx, &l, r)
		if err != nil || ok {
			return s.granted(l, st, tok, resp, ok, err)
		}
		if st != leaseAlive {
			s.dropLease(l, st)
			return grant{}, errRetryLease
		}
		s.contended.note(req.ResourceID, s.cfg.Now())
		w, err := s.newWaiter(ctx, req, deadline, l)
		if err != nil {
			s.keepLease(l.id, l.ttl)
			return grant{}, err
		}
		if err := s.register(ctx, w); err != nil {
			return grant{}, err
		}
		return s.waitQueued(ctx, req, w, deadline)
	}
	w, err := s.newWaiter(ctx, req, deadline, l)
	if err != nil {
		s.keepOrRevoke(l, s.settle(ctx, &l, r))
		return grant{}, err
	}
	ok, resp, err := s.grantTxn(ctx, req, l, w.tok, nil, queueOps(w))
	st := s.settle(ctx, &l, r)
	w.lock = l
	switch {
	case err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound):
		s.abandon(w, false, st) // its key may have been written
		return grant{}, err
	case err != nil || ok:
		return s.granted(l, st, w.tok, resp, ok, err) // the else branch did not run
	}
	if err := queued(w, resp); err != nil {
		s.abandon(w, false, st)
		return grant{}, err
	}
	s.contended.note(req.ResourceID, s.cfg.Now())
	if st != leaseAlive {
		// The registration names a lease that is gone or unsettled: leave,
		// and start again with another lease (at the back of the queue).
		return grant{}, s.requeue(ctx, w, st)
	}
	return s.waitQueued(ctx, req, w, deadline)
}

// waitQueued waits for the turn of w, which is registered, with its lock
// lease kept alive meanwhile.
func (s *Server) waitQueued(ctx context.Context, req acquireRequest, w *waiter, deadline time.Time) (grant, error) {
	s.keeper.keep(w.lock, waiterEvery(w.lock.ttl), time.Time{})
	s.stats.waiters.Add(1)
	defer s.stats.waiters.Add(-1)
	return s.wait(ctx, req, w, deadline)
}

// requeue leaves the queue after the lease a fresh registration names
// turned out gone or unsettled, and asks the acquire to start again.
func (s *Server) requeue(ctx context.Context, w *waiter, st leaseState) error {
	handed, gone, err := s.leave(ctx, w)
	s.dropLease(w.lock, st) // a lock handed over onto it is revoked with it
	switch {
	case err != nil:
		return fmt.Errorf("%w: leaving the queue: %w", ErrOutcomeUnknown, err)
	case handed != nil:
		return fmt.Errorf("%w: the lock was handed over onto a lease that could not be restarted", ErrOutcomeUnknown)
	case gone:
		return errMaybeHanded
	}
	return errRetryLease
}
