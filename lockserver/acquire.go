package lockserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// grant is a successful acquire or renew.
type grant struct {
	Token     string
	Fencing   int64
	ExpiresAt time.Time
	TTL       time.Duration
}

// acquire grants the lock or fails with ErrBusy, ErrUnavailable or
// ErrOutcomeUnknown. After ErrBusy (no grant was written) the lease goes
// back to the pool; after any other failure it is revoked, which also undoes
// a grant whose outcome is unknown.
func (s *Server) acquire(ctx context.Context, req acquireRequest) (grant, error) {
	deadline := s.cfg.Now().Add(req.Timeout)
	l, err := s.takeLease(ctx, req.TTL)
	if err != nil {
		return grant{}, err
	}
	var g grant
	if s.cfg.Unsafe == UnsafeCheckThenSet {
		g, err = s.acquireUnsafe(ctx, req, &l, deadline)
	} else {
		g, err = s.acquireSafe(ctx, req, &l, deadline)
	}
	switch {
	case errors.Is(err, ErrBusy):
		s.keepLease(l.id, l.ttl)
	case err != nil:
		s.revoke(l.id)
	}
	return g, err
}

// tryGrant is one grant attempt by waiter w: a single txn that writes the
// lock only if it is absent and no waiter older than w exists, and deletes
// w's key. lost reports that w's key is gone.
func (s *Server) tryGrant(ctx context.Context, req acquireRequest, l lease, w *waiter) (g grant, ok, lost bool, err error) {
	g, ok, resp, err := s.grantTxn(ctx, req, l, w, []clientv3.Op{clientv3.OpGet(w.key, clientv3.WithCountOnly())})
	if err != nil || ok {
		return g, ok, false, err
	}
	return grant{}, false, resp.Responses[0].GetResponseRange().Count == 0, nil
}

// grantTxn is the grant txn: it writes the lock only if it is absent and no
// waiter older than w is queued (w == nil: no waiter at all); a waiter's
// grant also deletes its key. els runs when the grant fails; resp is the
// txn's answer then.
func (s *Server) grantTxn(ctx context.Context, req acquireRequest, l lease, w *waiter, els []clientv3.Op) (grant, bool, *clientv3.TxnResponse, error) {
	tok, err := newToken(l.id)
	if err != nil {
		return grant{}, false, nil, fmt.Errorf("lockserver: token: %w", err)
	}
	lk, wp := lockKey(req.ResourceID), waitersPrefix(req.ResourceID)
	info := encodeInfo(lockInfo{OwnerID: req.ClientID, TTL: l.ttl.Seconds(), AcquiredAt: l.since.UTC()})
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(lk), "=", 0)}
	ops := []clientv3.Op{
		clientv3.OpPut(lk, hashToken(tok), clientv3.WithLease(l.id)),
		clientv3.OpPut(infoKey(req.ResourceID), info, clientv3.WithLease(l.id)),
		// The previous release's receipt has been seen by any watcher (it
		// is in the revision history); it lives under a lease that may be
		// kept for reuse, so it is removed here rather than left behind.
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
		return grant{}, false, nil, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	s.stats.grantTxns.Add(1)
	resp, err := s.kv().Txn(cctx).If(cmps...).Then(ops...).Else(els...).Commit()
	if err != nil {
		return grant{}, false, nil, s.writeErr(err, "grant txn")
	}
	if !resp.Succeeded {
		return grant{}, false, resp, nil
	}
	return grant{Token: tok, Fencing: resp.Header.Revision, ExpiresAt: l.since.Add(l.ttl), TTL: l.ttl}, true, resp, nil
}

// acquireSafe tries once without jumping the queue; when timeout > 0 the
// same txn queues the acquire if the lock is taken, and it waits its turn.
//
// A waiter key lives under the acquire's own lease l (the lease the lock
// will have), which the server keeps alive while it waits: a crashed or
// frozen server's waiters leave the queue when l expires. Before l may go
// back to the pool (lock_busy), its waiter key is deleted; if that fails, l
// is revoked instead, so a pooled lease never carries a waiter key.
func (s *Server) acquireSafe(ctx context.Context, req acquireRequest, l *lease, deadline time.Time) (grant, error) {
	queue := req.Timeout > 0
	g, ok, w, err := s.arrive(ctx, req, *l, queue)
	if err != nil || ok {
		return g, err
	}
	if !queue {
		return grant{}, ErrBusy
	}
	s.stats.waiters.Add(1)
	defer s.stats.waiters.Add(-1)
	for {
		g, err := s.waitTurn(ctx, req, l, w, deadline)
		switch {
		case err == nil:
			return g, nil // the grant txn deleted the waiter key
		case errors.Is(err, ErrBusy):
			if !s.leave(w) {
				s.revokeNow(l.id) // the waiter key must not outlive the answer
				l.id = 0          // nothing left to keep or revoke
			}
			return grant{}, err
		case !errors.Is(err, errWaiterLost):
			return grant{}, err // acquire revokes l, which removes the waiter key
		}
		// The waiter key is gone with an expired lease: queue again.
		if !s.cfg.Now().Before(deadline) {
			return grant{}, ErrBusy
		}
		if err := s.refreshLease(ctx, l); err != nil {
			return grant{}, err
		}
		if w, err = s.register(ctx, req, *l); err != nil {
			return grant{}, err
		}
	}
}

// arrive is the first grant attempt: one txn that writes the lock if it is
// absent and nobody is queued, and otherwise (queue) appends a waiter key
// under l in the same txn. ok reports the grant; w is the waiter otherwise.
func (s *Server) arrive(ctx context.Context, req acquireRequest, l lease, queue bool) (g grant, ok bool, w waiter, err error) {
	var key string
	var els []clientv3.Op
	if queue {
		key = waiterKey(req.ResourceID, l.id)
		els = queueOps(key, req.ClientID, l.id)
	}
	g, ok, resp, err := s.grantTxn(ctx, req, l, nil, els)
	if err != nil || ok || !queue {
		return g, ok, waiter{}, err
	}
	w, err = queued(key, resp)
	return grant{}, false, w, err
}
