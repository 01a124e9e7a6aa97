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

// waiter is a queued blocking acquire: its key, the key's CreateRevision
// (its place in the queue) and the lease the key is attached to.
type waiter struct {
	key   string
	rev   int64
	lease clientv3.LeaseID
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

// grantLease grants a lease of at least ttl (etcd rounds up to whole seconds
// and to its minimum TTL; the returned ttl is the true granted one).
func (s *Server) grantLease(ctx context.Context, ttl time.Duration) (lease, error) {
	secs := int64(math.Ceil(ttl.Seconds()))
	if secs < 1 {
		secs = 1
	}
	if err := s.pausePoint(ctx); err != nil {
		return lease{}, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	since := s.cfg.Now()
	resp, err := s.kv().Grant(cctx, secs)
	if err != nil {
		return lease{}, s.readErr(err, "lease grant") // a lease alone holds no lock
	}
	return lease{id: resp.ID, ttl: time.Duration(resp.TTL) * time.Second, since: since}, nil
}

// refreshLease restarts l's TTL (or grants a new lease if it expired) right
// before a grant attempt, so that expiresAt is measured from now.
func (s *Server) refreshLease(ctx context.Context, l *lease) error {
	if err := s.pausePoint(ctx); err != nil {
		return err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	since := s.cfg.Now()
	resp, err := s.kv().KeepAliveOnce(cctx, l.id)
	switch {
	case err == nil:
		l.ttl, l.since = time.Duration(resp.TTL)*time.Second, since
		return nil
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
// ErrOutcomeUnknown. On every failure the lock's lease is revoked, which also
// undoes a grant whose outcome is unknown.
func (s *Server) acquire(ctx context.Context, req acquireRequest) (grant, error) {
	deadline := s.cfg.Now().Add(req.Timeout)
	l, err := s.grantLease(ctx, req.TTL)
	if err != nil {
		return grant{}, err
	}
	var g grant
	if s.cfg.Unsafe == UnsafeCheckThenSet {
		g, err = s.acquireUnsafe(ctx, req, &l, deadline)
	} else {
		g, err = s.acquireSafe(ctx, req, &l, deadline)
	}
	if err != nil {
		s.revoke(l.id)
	}
	return g, err
}

// tryGrant is one grant attempt: a single txn that writes the lock only if it
// is absent and no older waiter exists (w == nil: no waiter at all). A
// waiter's attempt also deletes its waiter key. lost reports that w's key is gone.
func (s *Server) tryGrant(ctx context.Context, req acquireRequest, l lease, w *waiter) (g grant, ok, lost bool, err error) {
	tok, err := newToken(l.id)
	if err != nil {
		return grant{}, false, false, fmt.Errorf("lockserver: token: %w", err)
	}
	lk, wp := lockKey(req.ResourceID), waitersPrefix(req.ResourceID)
	info := encodeInfo(lockInfo{OwnerID: req.ClientID, TTL: l.ttl.Seconds(), AcquiredAt: l.since.UTC()})
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(lk), "=", 0)}
	ops := []clientv3.Op{
		clientv3.OpPut(lk, hashToken(tok), clientv3.WithLease(l.id)),
		clientv3.OpPut(infoKey(req.ResourceID), info, clientv3.WithLease(l.id)),
	}
	var els []clientv3.Op
	if w == nil {
		// An empty range compares as a zero KeyValue: CreateRevision 0.
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(wp).WithPrefix(), "=", 0))
	} else {
		// Over a range every key must match: no waiter older than w.
		cmps = append(cmps,
			clientv3.Compare(clientv3.CreateRevision(wp).WithPrefix(), ">", w.rev-1),
			clientv3.Compare(clientv3.CreateRevision(w.key), "=", w.rev))
		ops = append(ops, clientv3.OpDelete(w.key))
		els = append(els, clientv3.OpGet(w.key, clientv3.WithCountOnly()))
	}
	if err := s.pausePoint(ctx); err != nil {
		return grant{}, false, false, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	s.stats.grantTxns.Add(1)
	resp, err := s.kv().Txn(cctx).If(cmps...).Then(ops...).Else(els...).Commit()
	if err != nil {
		return grant{}, false, false, s.writeErr(err, "grant txn")
	}
	if !resp.Succeeded {
		lost = w != nil && resp.Responses[0].GetResponseRange().Count == 0
		return grant{}, false, lost, nil
	}
	return grant{Token: tok, Fencing: resp.Header.Revision, ExpiresAt: l.since.Add(l.ttl), TTL: l.ttl}, true, false, nil
}

// acquireSafe tries once without jumping the queue, then (timeout > 0) queues.
func (s *Server) acquireSafe(ctx context.Context, req acquireRequest, l *lease, deadline time.Time) (grant, error) {
	g, ok, _, err := s.tryGrant(ctx, req, *l, nil)
	if err != nil || ok {
		return g, err
	}
	if req.Timeout <= 0 {
		return grant{}, ErrBusy
	}
	s.stats.waiters.Add(1)
	defer s.stats.waiters.Add(-1)
	for {
		w, err := s.register(ctx, req, deadline)
		if err != nil {
			return grant{}, err
		}
		g, err := s.waitTurn(ctx, req, l, w, deadline)
		if err == nil {
			s.revoke(w.lease) // the grant txn already deleted the waiter key
			return g, nil
		}
		if errors.Is(err, ErrBusy) || errors.Is(err, errWaiterLost) {
			s.revokeNow(w.lease) // leave the queue before answering
		} else {
			s.revoke(w.lease)
		}
		if !errors.Is(err, errWaiterLost) {
			return grant{}, err
		}
	}
}

// register appends a waiter key under a lease that covers the remaining
// timeout (plus 2 s), so a crashed lock server's waiters leave the queue.
func (s *Server) register(ctx context.Context, req acquireRequest, deadline time.Time) (waiter, error) {
	remaining := deadline.Sub(s.cfg.Now())
	if remaining <= 0 {
		return waiter{}, ErrBusy
	}
	wl, err := s.grantLease(ctx, remaining+2*time.Second)
	if err != nil {
		return waiter{}, err
	}
	key := waiterKey(req.ResourceID, wl.id)
	if err := s.pausePoint(ctx); err != nil {
		s.revoke(wl.id)
		return waiter{}, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	resp, err := s.kv().Put(cctx, key, req.ClientID, clientv3.WithLease(wl.id))
	if err != nil {
		s.revoke(wl.id)
		return waiter{}, s.readErr(err, "register waiter") // a waiter key grants nothing
	}
	return waiter{key: key, rev: resp.Header.Revision, lease: wl.id}, nil
}

// waitTurn waits without polling until w is the oldest waiter and the lock is
// free, then makes one grant attempt. The head watches the lock key; every
// other waiter watches only its predecessor, so a release wakes one waiter.
func (s *Server) waitTurn(ctx context.Context, req acquireRequest, l *lease, w waiter, deadline time.Time) (grant, error) {
	lk, wp := lockKey(req.ResourceID), waitersPrefix(req.ResourceID)
	for {
		if !s.cfg.Now().Before(deadline) {
			return grant{}, ErrBusy
		}
		if err := s.pausePoint(ctx); err != nil {
			return grant{}, err
		}
		cctx, cancel := s.etcdCtx(ctx)
		resp, err := s.kv().Txn(cctx).Then(
			clientv3.OpGet(lk, clientv3.WithCountOnly()),
			clientv3.OpGet(wp, append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(w.rev-1), clientv3.WithKeysOnly())...),
			clientv3.OpGet(w.key, clientv3.WithCountOnly()),
		).Commit()
		cancel()
		if err != nil {
			s.stats.etcdErrors.Add(1)
			if err := s.backoff(ctx, deadline); err != nil {
				return grant{}, err
			}
			continue
		}
		if resp.Responses[2].GetResponseRange().Count == 0 {
			return grant{}, errWaiterLost
		}
		watch := ""
		if preds := resp.Responses[1].GetResponseRange().Kvs; len(preds) > 0 {
			watch = string(preds[0].Key)
		} else if resp.Responses[0].GetResponseRange().Count > 0 {
			watch = lk
		}
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
		if err := s.waitDelete(ctx, watch, resp.Header.Revision, deadline); err != nil {
			return grant{}, err
		}
	}
}

// waitDelete blocks until key is deleted after revision rev, the deadline
// passes, or the watch fails (then after a short backoff). The caller re-reads.
func (s *Server) waitDelete(ctx context.Context, key string, rev int64, deadline time.Time) error {
	wctx, cancel := context.WithDeadline(clientv3.WithRequireLeader(ctx), deadline)
	defer cancel()
	for resp := range s.kv().Watch(wctx, key, clientv3.WithRev(rev+1), clientv3.WithFilterPut()) {
		if resp.Err() != nil {
			s.stats.etcdErrors.Add(1)
			cancel()
			return s.backoff(ctx, deadline)
		}
		for _, ev := range resp.Events {
			if ev.Type == mvccpb.DELETE {
				return nil
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil // deadline (or watch closed): the caller re-checks
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
		Then(clientv3.OpDelete(lockKey(req.ResourceID)), clientv3.OpDelete(infoKey(req.ResourceID)),
			// A receipt under the same lease (gone with the revoke below):
			// it tells a watcher that this release, not the lease's
			// expiry, ended the grant.
			clientv3.OpPut(releasedKey(req.ResourceID), hashToken(req.LockToken), clientv3.WithLease(leaseID))).Commit()
	if err != nil {
		return s.writeErr(err, "release txn")
	}
	if !resp.Succeeded {
		return ErrNotHeld
	}
	s.revoke(leaseID)
	return nil
}

// renew restarts the lease's TTL (etcd cannot change a lease's TTL: the
// granted TTL is restored whatever ttl was asked) and then verifies, in a
// linearizable txn, that tok still holds the lock.
func (s *Server) renew(ctx context.Context, req renewRequest) (grant, error) {
	leaseID, ok := parseToken(req.LockToken)
	if !ok {
		return grant{}, ErrNotHeld
	}
	if err := s.pausePoint(ctx); err != nil {
		return grant{}, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	since := s.cfg.Now()
	ka, err := s.kv().KeepAliveOnce(cctx, leaseID)
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return grant{}, ErrNotHeld
	case err != nil:
		return grant{}, s.writeErr(err, "lease keepalive")
	}
	if err := s.checkpoint(ctx); err != nil {
		return grant{}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	cctx2, cancel2 := s.etcdCtx(ctx)
	defer cancel2()
	resp, err := s.kv().Txn(cctx2).If(ownedBy(req.ResourceID, req.LockToken, leaseID)...).
		Then(clientv3.OpGet(lockKey(req.ResourceID), clientv3.WithKeysOnly())).Commit()
	if err != nil {
		s.stats.etcdErrors.Add(1)
		return grant{}, fmt.Errorf("%w: verify after keepalive: %w", ErrOutcomeUnknown, err)
	}
	if !resp.Succeeded {
		return grant{}, ErrNotHeld
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return grant{}, ErrNotHeld
	}
	ttl := time.Duration(ka.TTL) * time.Second
	return grant{Token: req.LockToken, Fencing: kvs[0].CreateRevision, ExpiresAt: since.Add(ttl), TTL: ttl}, nil
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
