package lockserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// lease is an etcd lease with its granted TTL. since is the time just before
// the request that started (or last refreshed) the TTL was sent, so since+ttl
// is a lower bound of the lease's expiry: expiresAt never promises too much.
type lease struct {
	id    clientv3.LeaseID
	ttl   time.Duration
	since time.Time
}

// grant is a successful acquire or renew.
type grant struct {
	Token     string
	Fencing   int64
	ExpiresAt time.Time
	TTL       time.Duration
}

// lockState is what GET /locks/{id} reports.
type lockState struct {
	Held      bool
	OwnerID   string
	Fencing   int64
	ExpiresAt time.Time
	Waiters   int64
}

// waiter is a queued blocking acquire: its key (under the acquire's lease)
// and the key's CreateRevision (its place in the queue).
type waiter struct {
	key string
	rev int64
}

// errWaiterLost: the waiter key vanished (its lease expired); re-register.
var errWaiterLost = errors.New("lockserver: waiter key lost")

// retryBackoff is the pause before retrying a failed read or watch while waiting.
const retryBackoff = 100 * time.Millisecond

// etcdCtx bounds one etcd call by EtcdTimeout and fails fast on a member that
// has no leader (such a call was not applied).
func (s *Server) etcdCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(clientv3.WithRequireLeader(ctx), s.cfg.EtcdTimeout)
}

// notApplied reports whether err proves that etcd did not apply a request.
func notApplied(err error) bool {
	if errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrTooManyRequests) ||
		errors.Is(err, rpctypes.ErrGRPCNoLeader) {
		return true
	}
	switch rpctypes.ErrorDesc(err) {
	case "there is no address available", "there is no connection available":
		return true
	}
	return false
}

// readErr wraps a failed call that changed no lock as ErrUnavailable.
func (s *Server) readErr(err error, what string) error {
	s.stats.etcdErrors.Add(1)
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
}

// writeErr wraps a failed write: ErrUnavailable when etcd provably did not
// apply it, ErrOutcomeUnknown otherwise.
func (s *Server) writeErr(err error, what string) error {
	s.stats.etcdErrors.Add(1)
	if notApplied(err) {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrOutcomeUnknown, what, err)
}

// pausePoint is a checkpoint before an etcd call; failing it means the call
// was never sent.
func (s *Server) pausePoint(ctx context.Context) error {
	if err := s.checkpoint(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// ttlSeconds is the TTL in whole seconds a lease for ttl is granted with:
// ttl rounded up, and at least etcd's minimum once a grant has revealed it.
func (s *Server) ttlSeconds(ttl time.Duration) int64 {
	return max(int64(math.Ceil(ttl.Seconds())), 1, s.minTTL.Load())
}

// takeLease returns a lease of at least ttl whose TTL has just been
// (re)started: a kept one from the pool, restarted with KeepAliveOnce (no
// Raft write), or a new grant.
func (s *Server) takeLease(ctx context.Context, ttl time.Duration) (lease, error) {
	secs := s.ttlSeconds(ttl)
	for {
		id, ok := s.pool.get(secs, s.cfg.Now())
		if !ok {
			return s.grantLease(ctx, ttl)
		}
		l := lease{id: id, ttl: time.Duration(secs) * time.Second}
		err := s.keepAlive(ctx, &l)
		if err == nil {
			s.stats.leaseReuses.Add(1)
			return l, nil
		}
		switch {
		case errors.Is(err, ErrUnavailable): // paused and cancelled: nothing was sent
			s.keepLease(id, l.ttl)
			return lease{}, err
		case !errors.Is(err, rpctypes.ErrLeaseNotFound):
			return lease{}, s.readErr(err, "lease keepalive") // the kept lease is left to expire
		}
	}
}

// keepLease gives the lease of a lock that is gone (or was never written)
// back to the pool, or revokes it when there is no room.
func (s *Server) keepLease(id clientv3.LeaseID, ttl time.Duration) {
	if id == 0 {
		return
	}
	if !s.pool.put(id, int64(ttl/time.Second), s.cfg.Now()) {
		s.revoke(id)
	}
}

// grantLease grants a lease of at least ttl (etcd rounds up to whole seconds
// and to its minimum TTL; the returned ttl is the true granted one).
func (s *Server) grantLease(ctx context.Context, ttl time.Duration) (lease, error) {
	secs := s.ttlSeconds(ttl)
	if err := s.pausePoint(ctx); err != nil {
		return lease{}, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	since := s.cfg.Now()
	s.stats.leaseGrants.Add(1)
	resp, err := s.kv().Grant(cctx, secs)
	if err != nil {
		return lease{}, s.readErr(err, "lease grant") // a lease alone holds no lock
	}
	if resp.TTL > secs {
		s.minTTL.Store(resp.TTL) // etcd's minimum TTL: ask for it from now on
	}
	return lease{id: resp.ID, ttl: time.Duration(resp.TTL) * time.Second, since: since}, nil
}

// keepAlive restarts l's TTL with KeepAliveOnce, answered by the leader
// without a Raft write. Errors are etcd's (rpctypes.ErrLeaseNotFound when the
// lease is gone).
func (s *Server) keepAlive(ctx context.Context, l *lease) error {
	if err := s.pausePoint(ctx); err != nil {
		return err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	since := s.cfg.Now()
	resp, err := s.kv().KeepAliveOnce(cctx, l.id)
	if err != nil {
		return err
	}
	l.ttl, l.since = time.Duration(resp.TTL)*time.Second, since
	return nil
}

// refreshLease restarts l's TTL (or grants a new lease if it expired) right
// before a grant attempt, so that expiresAt is measured from now.
func (s *Server) refreshLease(ctx context.Context, l *lease) error {
	err := s.keepAlive(ctx, l)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnavailable):
		return err // paused and cancelled: nothing was sent
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		nl, err := s.grantLease(ctx, l.ttl)
		if err != nil {
			return err
		}
		*l = nl
		return nil
	default:
		return s.readErr(err, "lease keepalive")
	}
}

// revoke revokes a lease in the background (never needed for correctness).
func (s *Server) revoke(id clientv3.LeaseID) {
	if id == 0 {
		return
	}
	s.async(func(ctx context.Context) {
		if s.checkpoint(ctx) == nil {
			_, _ = s.kv().Revoke(ctx, id)
		}
	})
}

// revokeNow revokes a lease before answering (used to leave the queue).
func (s *Server) revokeNow(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.EtcdTimeout)
	defer cancel()
	if s.checkpoint(ctx) == nil {
		_, _ = s.kv().Revoke(ctx, id)
	}
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

// backoff waits retryBackoff (at most until the deadline) before a retry.
func (s *Server) backoff(ctx context.Context, deadline time.Time) error {
	d := min(retryBackoff, deadline.Sub(s.cfg.Now()))
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

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

// renew verifies that tok holds the lock, restarts the lease's TTL (etcd
// cannot change a lease's TTL: the granted TTL is restored whatever ttl was
// asked) and verifies again. The first check keeps a stale token from
// restarting a lease that a released lock left to the pool and that now
// backs another lock; the second makes the answer true after the restart.
func (s *Server) renew(ctx context.Context, req renewRequest) (grant, error) {
	leaseID, ok := parseToken(req.LockToken)
	if !ok {
		return grant{}, ErrNotHeld
	}
	held, _, err := s.owns(ctx, req, leaseID)
	switch {
	case errors.Is(err, ErrUnavailable):
		return grant{}, err
	case err != nil:
		return grant{}, s.readErr(err, "verify before keepalive")
	}
	if !held {
		return grant{}, ErrNotHeld
	}
	l := lease{id: leaseID}
	err = s.keepAlive(ctx, &l)
	switch {
	case errors.Is(err, ErrUnavailable):
		return grant{}, err // paused and cancelled: nothing was sent
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return grant{}, ErrNotHeld
	case err != nil:
		return grant{}, s.writeErr(err, "lease keepalive")
	}
	held, fencing, err := s.owns(ctx, req, leaseID)
	if err != nil {
		s.stats.etcdErrors.Add(1)
		return grant{}, fmt.Errorf("%w: verify after keepalive: %w", ErrOutcomeUnknown, err)
	}
	if !held {
		return grant{}, ErrNotHeld
	}
	return grant{Token: req.LockToken, Fencing: fencing, ExpiresAt: l.since.Add(l.ttl), TTL: l.ttl}, nil
}

// owns reads linearizably whether req's token holds the lock, and its
// fencing token.
func (s *Server) owns(ctx context.Context, req renewRequest, leaseID clientv3.LeaseID) (bool, int64, error) {
	if err := s.pausePoint(ctx); err != nil {
		return false, 0, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	resp, err := s.kv().Txn(cctx).If(ownedBy(req.ResourceID, req.LockToken, leaseID)...).
		Then(clientv3.OpGet(lockKey(req.ResourceID), clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return false, 0, err
	}
	if !resp.Succeeded {
		return false, 0, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return false, 0, nil
	}
	return true, kvs[0].CreateRevision, nil
}

// lookup reads a lock linearizably, then its lease's remaining TTL (whole
// seconds, as etcd reports it).
func (s *Server) lookup(ctx context.Context, id string) (lockState, error) {
	if err := s.pausePoint(ctx); err != nil {
		return lockState{}, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	resp, err := s.kv().Txn(cctx).Then(
		clientv3.OpGet(lockKey(id)),
		clientv3.OpGet(infoKey(id)),
		clientv3.OpGet(waitersPrefix(id), clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return lockState{}, s.readErr(err, "get")
	}
	waiters := resp.Responses[2].GetResponseRange().GetCount()
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return lockState{Waiters: waiters}, nil
	}
	st := lockState{Held: true, Fencing: kvs[0].CreateRevision, Waiters: waiters}
	if infos := resp.Responses[1].GetResponseRange().GetKvs(); len(infos) > 0 {
		var info lockInfo
		if json.Unmarshal(infos[0].Value, &info) == nil {
			st.OwnerID = info.OwnerID
		}
	}
	if err := s.pausePoint(ctx); err != nil {
		return lockState{}, err
	}
	since := s.cfg.Now()
	ttl, err := s.kv().TimeToLive(cctx, clientv3.LeaseID(kvs[0].Lease))
	if err != nil {
		return lockState{}, s.readErr(err, "lease ttl")
	}
	st.ExpiresAt = since.Add(time.Duration(max(ttl.TTL, 0)) * time.Second)
	return st, nil
}

// healthTimeout bounds the health probe's linearizable read.
const healthTimeout = time.Second

// health succeeds when a linearizable read answers within healthTimeout.
func (s *Server) health(ctx context.Context) error {
	if err := s.pausePoint(ctx); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), min(healthTimeout, s.cfg.EtcdTimeout))
	defer cancel()
	if _, err := s.kv().Get(cctx, "/health", clientv3.WithCountOnly()); err != nil {
		return s.readErr(err, "health read")
	}
	return nil
}
