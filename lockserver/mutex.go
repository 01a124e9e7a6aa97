package lockserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// RecipeMutex selects etcd's own lock recipe, concurrency.Mutex, behind the
// same HTTP API (Config.Recipe): a class can put the design's lock server
// and etcd's recipe under the same faults and checks.
//
// An acquire takes a lease of the asked ttl and runs Mutex.Lock (TryLock
// when timeout is 0) on a concurrency.Session of that lease, which keeps the
// lease alive while the acquire waits; once granted, the session is
// orphaned, so the lock lasts its ttl unless renewed, and the lease is
// restarted once so that expiresAt is measured from the grant. The fencing
// token is the mutex key's CreateRevision: the recipe grants in that order.
// Beside the mutex key, on the same lease, the server writes the owner and
// the token's hash (keys MutexInfoPrefix, MutexTokenPrefix). Release deletes
// the three keys in one txn guarded by the hash, then revokes the lease;
// renew restarts the lease with KeepAliveOnce (each lease backs one grant,
// never reused, so that extends only this grant) and keeps the TTL it was
// granted with: the recipe has no way to change it.
const RecipeMutex = "etcd-mutex"

// Key prefixes of RecipeMutex. A resource id never contains '#', so the
// prefix of one resource is never the prefix of another.
const (
	MutexPrefix      = "/mutex/"      // + resourceId + "#/" + lease: the recipe's own keys, oldest = holder
	MutexInfoPrefix  = "/mutexinfo/"  // + resourceId + "#/" + lease: {"ownerId","ttl"}
	MutexTokenPrefix = "/mutextoken/" // + resourceId + "#/" + lease: hex SHA-256 of the lockToken
)

func mutexPrefix(id string) string { return MutexPrefix + id + "#" }

// mutexKeys are the keys of one grant (or attempt) on lease.
type mutexKeys struct{ lock, info, token string }

func keysOf(id string, lease clientv3.LeaseID) mutexKeys {
	suffix := id + "#/" + fmt.Sprintf("%x", int64(lease))
	return mutexKeys{lock: MutexPrefix + suffix, info: MutexInfoPrefix + suffix, token: MutexTokenPrefix + suffix}
}

// mutexToken is "<lease in hex>.<160 random bits in hex>".
func mutexToken(lease clientv3.LeaseID) (string, error) {
	tok, err := newToken()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%x.%s", int64(lease), tok), nil
}

// leaseOfToken returns the lease a mutex token names; false for any
// string that is not such a token (it holds nothing).
func leaseOfToken(tok string) (clientv3.LeaseID, bool) {
	l, r, ok := strings.Cut(tok, ".")
	if !ok || !validToken(r) || len(l) == 0 || len(l) > 16 {
		return 0, false
	}
	id, err := strconv.ParseInt(l, 16, 64)
	return clientv3.LeaseID(id), err == nil && id > 0
}

// mutexInfo is the owner record of a grant.
type mutexInfo struct {
	OwnerID string  `json:"ownerId"`
	TTL     float64 `json:"ttl"`
}

// acquireMutex is acquire with etcd's concurrency.Mutex.
func (s *Server) acquireMutex(ctx context.Context, req acquireRequest) (grant, error) {
	l, err := s.grantLease(ctx, req.TTL)
	if err != nil {
		return grant{}, err
	}
	g, err := s.lockMutex(ctx, req, l)
	if err != nil {
		if rerr := s.revokeNow(l.id); rerr != nil && !errors.Is(err, ErrBusy) {
			// Not revoked: a grant may stand until the lease expires.
			return grant{}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
		}
	}
	return g, err
}

// lockMutex writes the grant's records and runs the recipe on lease l.
func (s *Server) lockMutex(ctx context.Context, req acquireRequest, l lease) (grant, error) {
	keys := keysOf(req.ResourceID, l.id)
	tok, err := mutexToken(l.id)
	if err != nil {
		return grant{}, fmt.Errorf("lockserver: token: %w", err)
	}
	info, _ := json.Marshal(mutexInfo{OwnerID: req.ClientID, TTL: l.ttl.Seconds()})
	if err := s.pausePoint(ctx); err != nil {
		return grant{}, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	_, err = s.kv().Txn(cctx).Then(
		clientv3.OpPut(keys.info, string(info), clientv3.WithLease(l.id)),
		clientv3.OpPut(keys.token, hashToken(tok), clientv3.WithLease(l.id)),
	).Commit()
	cancel()
	if err != nil {
		return grant{}, s.writeErr(err, "mutex records")
	}
	// The session keeps the lease alive while the acquire waits.
	sess, err := concurrency.NewSession(s.kv(), concurrency.WithLease(l.id), concurrency.WithContext(s.ctx))
	if err != nil {
		return grant{}, s.readErr(err, "mutex session")
	}
	defer sess.Orphan()
	m := concurrency.NewMutex(sess, mutexPrefix(req.ResourceID))
	if err := s.pausePoint(ctx); err != nil {
		return grant{}, err
	}
	s.stats.grantTxns.Add(1)
	if req.Timeout <= 0 {
		cctx, cancel := s.etcdCtx(ctx)
		err = m.TryLock(cctx)
		cancel()
	} else {
		wctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), req.Timeout)
		err = m.Lock(wctx)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = concurrency.ErrLocked // the wait ended
		}
	}
	switch {
	case errors.Is(err, concurrency.ErrLocked):
		return grant{}, ErrBusy
	case errors.Is(err, concurrency.ErrSessionExpired):
		return grant{}, fmt.Errorf("%w: mutex: the lease expired while waiting", ErrUnavailable)
	case err != nil:
		return grant{}, s.writeErr(err, "mutex lock")
	}
	sess.Orphan() // from now on the lock lasts its ttl unless renewed
	if err := s.keepAlive(ctx, &l); err != nil {
		return grant{}, s.writeErr(err, "mutex lease restart")
	}
	cctx, cancel = s.etcdCtx(ctx)
	resp, err := s.kv().Get(cctx, m.Key())
	cancel()
	if err != nil {
		return grant{}, s.writeErr(err, "mutex key")
	}
	if len(resp.Kvs) == 0 {
		return grant{}, fmt.Errorf("%w: mutex: the lock vanished", ErrUnavailable)
	}
	return grant{Token: tok, Fencing: resp.Kvs[0].CreateRevision, ExpiresAt: l.since.Add(l.ttl), TTL: l.ttl}, nil
}

// revokeNow revokes a lease and waits for the answer (bounded by EtcdTimeout).
func (s *Server) revokeNow(id clientv3.LeaseID) error {
	ctx, cancel := s.cleanupCtx()
	defer cancel()
	if err := s.checkpoint(ctx); err != nil {
		return err
	}
	_, err := s.kv().Revoke(ctx, id)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil // already gone: it holds nothing
	}
	return err
}

// heldByToken is the compare that holds while tok's grant holds the lock
// keys of id on its lease.
func heldByToken(keys mutexKeys, tok string) clientv3.Cmp {
	return clientv3.Compare(clientv3.Value(keys.token), "=", hashToken(tok))
}

// releaseMutex deletes the grant's keys in one txn guarded by the token's
// hash, then revokes its lease.
func (s *Server) releaseMutex(ctx context.Context, req releaseRequest) error {
	lease, ok := leaseOfToken(req.LockToken)
	if !ok {
		return ErrNotHeld
	}
	keys := keysOf(req.ResourceID, lease)
	if err := s.pausePoint(ctx); err != nil {
		return err
	}
	cctx, cancel := s.etcdCtx(ctx)
	resp, err := s.kv().Txn(cctx).
		If(heldByToken(keys, req.LockToken), clientv3.Compare(clientv3.CreateRevision(keys.lock), ">", 0)).
		Then(clientv3.OpDelete(keys.lock), clientv3.OpDelete(keys.info), clientv3.OpDelete(keys.token)).Commit()
	cancel()
	if err != nil {
		return s.writeErr(err, "mutex release")
	}
	if !resp.Succeeded {
		return ErrNotHeld
	}
	s.revoke(lease)
	return nil
}

// renewMutex restarts the grant's lease, after checking that the token
// still holds the lock: the lease backs this grant only, so restarting it
// extends nothing else.
func (s *Server) renewMutex(ctx context.Context, req renewRequest) (grant, error) {
	id, ok := leaseOfToken(req.LockToken)
	if !ok {
		return grant{}, ErrNotHeld
	}
	keys := keysOf(req.ResourceID, id)
	if err := s.pausePoint(ctx); err != nil {
		return grant{}, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	resp, err := s.kv().Txn(cctx).
		If(heldByToken(keys, req.LockToken), clientv3.Compare(clientv3.CreateRevision(keys.lock), ">", 0)).
		Then(clientv3.OpGet(keys.lock)).Commit()
	cancel()
	if err != nil {
		return grant{}, s.readErr(err, "mutex renew read")
	}
	if !resp.Succeeded {
		return grant{}, ErrNotHeld
	}
	fencing := resp.Responses[0].GetResponseRange().Kvs[0].CreateRevision
	l := lease{id: id}
	switch err := s.keepAlive(ctx, &l); {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return grant{}, ErrNotHeld // it expired just now
	case err != nil:
		return grant{}, s.readErr(err, "mutex renew")
	}
	return grant{Token: req.LockToken, Fencing: fencing, ExpiresAt: l.since.Add(l.ttl), TTL: l.ttl}, nil
}

// lookupMutex reads who holds the mutex of id: its oldest key.
func (s *Server) lookupMutex(ctx context.Context, id string) (lockState, error) {
	if err := s.pausePoint(ctx); err != nil {
		return lockState{}, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	pfx := mutexPrefix(id) + "/"
	resp, err := s.kv().Txn(cctx).Then(
		clientv3.OpGet(pfx, clientv3.WithFirstCreate()...),
		clientv3.OpGet(pfx, clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return lockState{}, s.readErr(err, "get")
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return lockState{}, nil
	}
	owner := kvs[0]
	st := lockState{Held: true, Fencing: owner.CreateRevision, Waiters: resp.Responses[1].GetResponseRange().GetCount() - 1}
	keys := keysOf(id, clientv3.LeaseID(owner.Lease))
	if info, err := s.kv().Get(cctx, keys.info); err == nil && len(info.Kvs) > 0 {
		var mi mutexInfo
		if json.Unmarshal(info.Kvs[0].Value, &mi) == nil {
			st.OwnerID = mi.OwnerID
		}
	}
	since := s.cfg.Now()
	ttl, err := s.kv().TimeToLive(cctx, clientv3.LeaseID(owner.Lease))
	if err != nil {
		return lockState{}, s.readErr(err, "lease ttl")
	}
	st.ExpiresAt = since.Add(time.Duration(max(ttl.TTL, 0)) * time.Second)
	return st, nil
}
