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
	if s.cfg.Recipe == RecipeMutex {
		return s.acquireMutex(ctx, req)
	}
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
	tok, err := newToken()
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
// A waiter key lives on a waiter lease that expires soon after the
// acquire's deadline (see waiterLeases), not on the lease the lock will
// have: a crashed or frozen server's waiter leaves the queue soon after its
// timeout, whatever the lock's TTL. l, the lock's lease, carries nothing
// while the acquire waits.
func (s *Server) acquireSafe(ctx context.Context, req acquireRequest, l *lease, deadline time.Time) (grant, error) {
	if req.Timeout <= 0 {
		g, ok, err := s.arrive(ctx, req, *l, nil)
		if err == nil && !ok {
			err = ErrBusy
		}
		return g, err
	}
	w, err := s.newWaiter(ctx, req, deadline)
	if err != nil {
		return grant{}, err
	}
	g, ok, err := s.arrive(ctx, req, *l, &w)
	switch {
	case err != nil:
		s.leaveLater(w) // its key may have been written
		return grant{}, err
	case ok:
		return g, nil // the else branch, which writes w's key, did not run
	}
	s.stats.waiters.Add(1)
	defer s.stats.waiters.Add(-1)
	return s.wait(ctx, req, l, w, deadline)
}

// arrive is the first grant attempt: one txn that writes the lock if it is
// absent and nobody is queued, and otherwise (w != nil) appends w's key in
// the same txn and sets w's place in the queue. ok reports the grant.
func (s *Server) arrive(ctx context.Context, req acquireRequest, l lease, w *waiter) (g grant, ok bool, err error) {
	var els []clientv3.Op
	if w != nil {
		els = queueOps(*w, req.ClientID)
	}
	g, ok, resp, err := s.grantTxn(ctx, req, l, nil, els)
	if err != nil || ok || w == nil {
		return g, ok, err
	}
	return grant{}, false, queued(w, resp)
}
