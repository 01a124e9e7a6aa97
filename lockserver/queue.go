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

// headEvery is how often the head of a queue restarts the lease its lock
// will be on while it waits. A release hands the lock over onto that lease
// as it is, so a handed-over lock is promised what the lease has left: at
// most about headEvery less than its TTL.
const headEvery = 100 * time.Millisecond

// waiterEvery is how often a waiter behind the head restarts that lease:
// often enough that it never expires while the waiter waits. A waiter that
// becomes the head restarts it at once.
func waiterEvery(ttl time.Duration) time.Duration { return max(headEvery, ttl/3) }

// waiter is a queued blocking acquire.
type waiter struct {
	res   string
	reg   registration // what the waiter key holds (rev: 0 until written)
	tok   string       // the lockToken the lock gets, whoever grants it
	claim lease        // the claim lease the waiter key is on
	lock  lease        // the lease the lock will be on; the keeper restarts it while w waits
	watch string       // the key w waits on next: its predecessor's, or the lock key
	// maybeHanded: a registration of w was lost, and a hand-over may have
	// given w a lock that ended before w saw it. Such an acquire never
	// answers "busy" (the lock was maybe granted): it answers "unknown".
	maybeHanded bool
}

// errWaiterLost: the waiter key vanished and the lock is not the waiter's;
// register again.
var errWaiterLost = errors.New("lockserver: waiter key lost")

// errMaybeHanded answers an acquire that lost its place in the queue while a
// release may have handed it a lock that ended before it saw it: etcd may
// have recorded a grant to it, so its outcome is unknown.
var errMaybeHanded = fmt.Errorf("%w: the acquire lost its place in the queue and may have been handed the lock", ErrOutcomeUnknown)

// newWaiter prepares the registration of an acquire that waits until
// deadline and whose lock will be on l.
func (s *Server) newWaiter(ctx context.Context, req acquireRequest, deadline time.Time, l lease) (*waiter, error) {
	c, err := s.claimLease(ctx, deadline)
	if err != nil {
		return nil, err
	}
	tok, err := newToken()
	if err != nil {
		return nil, fmt.Errorf("lockserver: token: %w", err)
	}
	w := &waiter{res: req.ResourceID, tok: tok, claim: c, lock: l}
	w.reg = registration{key: waiterKey(req.ResourceID, c.id), hash: hashToken(tok), lease: l.id, ttl: l.ttl, owner: req.ClientID}
	return w, nil
}

// queueOps writes w's registration on its claim lease and reads back the
// two newest waiter keys: w's (its CreateRevision is w's place in the
// queue) and its predecessor's, which w watches first.
func queueOps(w *waiter) []clientv3.Op {
	return []clientv3.Op{
		clientv3.OpPut(w.reg.key, encodeRegistration(w.reg), clientv3.WithLease(w.claim.id)),
		clientv3.OpGet(waitersPrefix(w.res), clientv3.WithPrefix(), clientv3.WithKeysOnly(),
			clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend), clientv3.WithLimit(2)),
	}
}

// queued sets w's place in the queue, and what it watches first, from the
// answer of the txn whose (else) branch ran queueOps.
func queued(w *waiter, resp *clientv3.TxnResponse) error {
	kvs := resp.Responses[1].GetResponseRange().GetKvs()
	if len(kvs) == 0 || string(kvs[0].Key) != w.reg.key {
		return fmt.Errorf("%w: waiter key missing after its put", ErrOutcomeUnknown)
	}
	w.reg.rev = kvs[0].CreateRevision
	w.watch = lockKey(w.res) // the first waiter: the lock is held
	if len(kvs) == 2 {
		w.watch = string(kvs[1].Key)
	}
	return nil
}

// wait waits for w's turn until the deadline, registering again when its
// registration was lost. Every way out disposes of w's lock lease.
func (s *Server) wait(ctx context.Context, req acquireRequest, w *waiter, deadline time.Time) (grant, error) {
	for {
		g, err := s.waitTurn(ctx, req, w, deadline)
		if !errors.Is(err, errWaiterLost) {
			return g, maybeGranted(w, err)
		}
		// The registration is gone and the lock is not w's: its claim
		// lease ended (this server was paused or cut off from etcd), or a
		// hand-over came and its lock ended before w saw it.
		w.maybeHanded = true
		if err := s.reregister(ctx, req, w, deadline); err != nil {
			return grant{}, maybeGranted(w, err)
		}
	}
}

// maybeGranted is the answer to a wait that ended with err, when w may have
// been handed a lock that ended before w saw it (w.maybeHanded): etcd then
// recorded a grant to this acquire, so no answer may say it had no effect
// ("busy", "unavailable") or start the acquire again (errRetryLease, which
// would make a second grant for one request). Such an error becomes
// ErrOutcomeUnknown; any other answer stands.
func maybeGranted(w *waiter, err error) error {
	if err == nil || !w.maybeHanded || errors.Is(err, ErrOutcomeUnknown) {
		return err
	}
	// %v, not %w: the cause must no longer match ErrUnavailable or errRetryLease.
	return fmt.Errorf("%w (then: %v)", errMaybeHanded, err)
}

// reregister queues w again, at the back, with a new token and (if its
// lease is gone) a new lease. On failure the lock lease is disposed of.
func (s *Server) reregister(ctx context.Context, req acquireRequest, w *waiter, deadline time.Time) error {
	l, st := s.keeper.forget(ctx, w.lock.id)
	if !s.cfg.Now().Before(deadline) {
		s.keepOrRevoke(l, st)
		return errMaybeHanded
	}
	if st != leaseAlive {
		s.dropLease(l, st)
		nl, r, err := s.takeLease(ctx, req.TTL)
		if err != nil {
			return err
		}
		if st := s.settle(ctx, &nl, r); st != leaseAlive {
			s.dropLease(nl, st)
			return fmt.Errorf("%w: no lease to queue with", ErrUnavailable)
		}
		l = nl
	}
	nw, err := s.newWaiter(ctx, req, deadline, l)
	if err != nil {
		s.keepLease(l.id, l.ttl)
		return err
	}
	nw.maybeHanded = true
	*w = *nw
	if err := s.register(ctx, w); err != nil {
		return err
	}
	s.keeper.keep(l, waiterEvery(l.ttl), time.Time{})
	return nil
}

// register writes w's registration in a txn of its own (at the back of the
// queue). On failure it disposes of w's lock lease (w.lock, alive and not
// kept), leaving the queue in the background if the key may be written.
func (s *Server) register(ctx context.Context, w *waiter) error {
	if err := s.pausePoint(ctx); err != nil {
		s.keepLease(w.lock.id, w.lock.ttl)
		return err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	resp, err := s.kv().Txn(cctx).Then(queueOps(w)...).Commit()
	if err == nil {
		err = queued(w, resp)
	}
	if err != nil {
		s.abandon(w, false, leaseAlive)
		return s.writeErr(err, "register waiter")
	}
	return nil
}

// waitTurn waits without polling until w is handed the lock, or is the
// oldest waiter and the lock is free (then it makes one grant attempt). The
// head watches the lock key; every other waiter watches only its
// predecessor, so a release wakes one waiter. Each wait starts the watch
// first and then reads w's place once (waitPlace): one read per wake-up.
// After its predecessor left, a waiter guesses it is the head (the
// predecessor was most likely handed the lock) and the read corrects it.
func (s *Server) waitTurn(ctx context.Context, req acquireRequest, w *waiter, deadline time.Time) (grant, error) {
	lk := lockKey(req.ResourceID)
	for {
		if !s.cfg.Now().Before(deadline) {
			return s.giveUp(ctx, req, w)
		}
		if w.watch == lk {
			s.keeper.setEvery(w.lock.id, headEvery)
		}
		o, err := s.waitPlace(ctx, req, w, deadline)
		switch {
		case errors.Is(err, ErrUnavailable):
			s.abandon(w, true, leaseAlive)
			return grant{}, err
		case err != nil: // etcd did not answer: try again shortly
			if err := s.backoff(ctx, deadline); err != nil {
				s.abandon(w, true, leaseAlive)
				return grant{}, err
			}
			continue
		case o.handed != nil:
			return s.handedOver(ctx, req, w, o.handed)
		case o.lost:
			return grant{}, errWaiterLost
		case o.free:
			g, done, err := s.tryGrant(ctx, req, w)
			if done || err != nil {
				return g, err
			}
			w.watch = lk // taken again, or an older waiter: the next read says
		case o.next != "":
			w.watch = o.next
		}
	}
}

// waited is how a wait ended: handed over, lost, the lock free for w, or
// w's next key to watch (none: the deadline passed).
type waited struct {
	handed *mvccpb.KeyValue
	lost   bool
	free   bool
	next   string
}

// waitPlace watches w.watch (the lock key for a deletion or a put of w's
// hash; a predecessor's key for its deletion) and, once the watch exists,
// reads w's place: if the read says w waits on something else, or need not
// wait, it says so at once; otherwise the watch's event ends the wait.
//
// The watch starts at etcd's current revision, not at the revision of a
// read: a watch that starts in the past is "unsynced" and etcd catches it up
// in a loop that runs every 100 ms, which under contention (the revision
// moves all the time) would delay every hand-over by up to 100 ms. The read
// after the watch exists makes sure that nothing before it is missed.
func (s *Server) waitPlace(ctx context.Context, req acquireRequest, w *waiter, deadline time.Time) (waited, error) {
	lk := lockKey(req.ResourceID)
	wctx, cancel := context.WithDeadline(withLeader(ctx), deadline)
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithCreatedNotify()}
	if w.watch != lk {
		opts = append(opts, clientv3.WithFilterPut())
	}
	created := false
	for resp := range s.kv().Watch(wctx, w.watch, opts...) {
		if err := resp.Err(); err != nil {
			s.stats.etcdErrors.Add(1)
			return waited{}, err
		}
		if !created && resp.Created {
			created = true
			p, err := s.queuePlace(ctx, req, w)
			switch {
			case err != nil:
				return waited{}, err
			case p.handed != nil:
				return waited{handed: p.handed}, nil
			case p.lost:
				return waited{lost: true}, nil
			case p.watch == "":
				return waited{free: true}, nil
			case p.watch != w.watch:
				return waited{next: p.watch}, nil
			}
		}
		for _, ev := range resp.Events {
			switch {
			case w.watch == lk && ev.Type == mvccpb.DELETE:
				return waited{free: true}, nil
			case w.watch == lk && string(ev.Kv.Value) == w.reg.hash:
				return waited{handed: ev.Kv}, nil
			case w.watch != lk && ev.Type == mvccpb.DELETE:
				return waited{next: lk}, nil // the predecessor left: likely w is the head now
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return waited{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return waited{}, nil // the deadline, or the watch closed: the caller checks
}

// place is what a waiter waits for, as queuePlace read it.
type place struct {
	watch  string           // the predecessor's key; the lock key when w is the head and the lock is held; "" when the lock is free for w
	handed *mvccpb.KeyValue // the lock key, when a release handed the lock over to w
	lost   bool             // w's key is gone and the lock is not w's
}

// queuePlace reads, in one linearizable txn, what w waits for.
func (s *Server) queuePlace(ctx context.Context, req acquireRequest, w *waiter) (place, error) {
	lk, wp := lockKey(req.ResourceID), waitersPrefix(req.ResourceID)
	if err := s.pausePoint(ctx); err != nil {
		return place{}, err
	}
	cctx, cancel := s.etcdCtx(ctx)
	defer cancel()
	resp, err := s.kv().Txn(cctx).Then(
		clientv3.OpGet(lk),
		clientv3.OpGet(wp, append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(w.reg.rev-1), clientv3.WithKeysOnly())...),
		clientv3.OpGet(w.reg.key, clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		s.stats.etcdErrors.Add(1)
		return place{}, err
	}
	locks := resp.Responses[0].GetResponseRange().GetKvs()
	if resp.Responses[2].GetResponseRange().Count == 0 {
		if len(locks) == 1 && string(locks[0].Value) == w.reg.hash {
			return place{handed: locks[0]}, nil
		}
		return place{lost: true}, nil
	}
	if preds := resp.Responses[1].GetResponseRange().Kvs; len(preds) > 0 {
		return place{watch: string(preds[0].Key)}, nil
	}
	if len(locks) > 0 {
		return place{watch: lk}, nil
	}
	return place{}, nil
}

// tryGrant is the head's grant attempt on a free lock: the grant txn (which
// also deletes w's key), sent together with a restart of w's lock lease.
// done reports the end of the wait (granted, or failed); !done and no error:
// the lock was taken again, or an older waiter appeared, and w waits on.
func (s *Server) tryGrant(ctx context.Context, req acquireRequest, w *waiter) (g grant, done bool, err error) {
	sent := s.cfg.Now()
	_, _ = s.keeper.send(w.lock.id) // without a stream, the keeper's last restart stands
	els := []clientv3.Op{clientv3.OpGet(w.reg.key, clientv3.WithCountOnly()), clientv3.OpGet(lockKey(req.ResourceID))}
	ok, resp, err := s.grantTxn(ctx, req, w.lock, w.tok, &w.reg, els)
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound): // the lock lease expired: start again
		s.abandon(w, true, leaseAlive)
		return grant{}, true, errRetryLease
	case err != nil:
		s.abandon(w, true, leaseAlive) // revokes the lease if the grant's outcome is unknown
		return grant{}, true, err
	case !ok:
		if lk := resp.Responses[1].GetResponseRange().GetKvs(); len(lk) == 1 && string(lk[0].Value) == w.reg.hash {
			g, err := s.handedOver(ctx, req, w, lk[0])
			return g, true, err
		}
		if resp.Responses[0].GetResponseRange().Count == 0 {
			return grant{}, true, errWaiterLost
		}
		return grant{}, false, nil
	}
	cctx, cancel := s.cleanupCtx()
	l, st := s.keeper.forget(cctx, w.lock.id)
	cancel()
	if st != leaseAlive {
		s.dropLease(l, st)
		return grant{}, true, fmt.Errorf("%w: the lock's lease could not be restarted", ErrOutcomeUnknown)
	}
	exp, ttl := promise(l, sent, s.cfg.Now())
	return grant{Token: w.tok, Fencing: resp.Header.Revision, ExpiresAt: exp, TTL: ttl}, true, nil
}

// promise is the expiresAt and ttl an answer gives for a lock on l granted
// by a txn sent at sent: the granted TTL from when l was restarted, if that
// was right before the txn; otherwise (or when sent is zero: a hand-over,
// whose txn this server did not send) what is left of the lease at now, so
// that "ttl from any time after the grant" never outlasts the lease.
func promise(l lease, sent, now time.Time) (time.Time, time.Duration) {
	exp := l.since.Add(l.ttl)
	if !sent.IsZero() && !l.since.Before(sent) {
		return exp, l.ttl
	}
	ttl := exp.Sub(now).Truncate(time.Millisecond)
	return now.Add(ttl), ttl
}

// handedOver answers an acquire whose lock a release handed over: kv is the
// lock key as the hand-over wrote it (its ModRevision is the fencing token).
// The lock is on w's lock lease, which its server restarted while it waited;
// the answer promises what that lease has left.
func (s *Server) handedOver(ctx context.Context, req acquireRequest, w *waiter, kv *mvccpb.KeyValue) (grant, error) {
	cctx, cancel := s.cleanupCtx() // the restart in flight must settle, even when the client left
	l, st := s.keeper.forget(cctx, w.lock.id)
	cancel()
	if st != leaseAlive {
		s.dropLease(l, st) // revoking it ends the lock too
		return grant{}, fmt.Errorf("%w: the lock was handed over onto a lease that could not be restarted", ErrOutcomeUnknown)
	}
	if err := ctx.Err(); err != nil { // nobody will take the answer: hand the lock on
		s.giveBack(req.ResourceID, w.tok)
		return grant{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	exp, ttl := promise(l, time.Time{}, s.cfg.Now())
	if ttl <= 0 {
		s.giveBack(req.ResourceID, w.tok)
		return grant{}, fmt.Errorf("%w: the handed-over lock's lease had run out", ErrOutcomeUnknown)
	}
	s.stats.handedOver.Add(1)
	return grant{Token: w.tok, Fencing: kv.ModRevision, ExpiresAt: exp, TTL: ttl}, nil
}
