package lockserver

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// keeperTick is how often the keeper looks for leases due for a restart;
// keeperStreams is how many keep-alive streams it keeps open.
const (
	keeperTick    = 50 * time.Millisecond
	keeperStreams = 4
)

// errNoStream: the keeper has no healthy keep-alive stream right now (etcd
// unreachable, or reconnecting); the caller restarts its lease another way.
var errNoStream = errors.New("lockserver: no keep-alive stream")

// keeper restarts leases over a few long-lived LeaseKeepAlive streams per
// lock server, instead of a KeepAliveOnce per restart (which opens a gRPC
// stream for a single message and closes it). etcd's leader answers a
// restart without a Raft write; a follower forwards it to the leader, one
// request of a stream at a time. So the keeper keeps keeperStreams streams
// (the client spreads them over the members) and sends each restart on the
// one that answers fastest for its load, which is in practice the one on the
// leader.
//
// Two kinds of callers use it:
//
//   - an acquire that took a lease from the pool sends one restart (send)
//     and, instead of waiting for its answer before the grant txn, sends the
//     txn at once and waits for both (settle): the restart is off the
//     critical path, and its answer still says how long the lease lives from
//     the moment the restart was sent, so expiresAt promises exactly the
//     granted TTL, as with KeepAliveOnce;
//   - leases that must stay alive while nothing else happens to them (keep):
//     the claim leases a server's waiters are registered under, and the
//     lease each waiter's lock will be on once a release hands it over.
//     Those are restarted every `every` until `until`, and forget stops that
//     and reports what the last answer said.
//
// A restart answered with TTL 0 means etcd has no such lease. A restart that
// got no answer (its stream broke, or no answer within EtcdTimeout) may still
// be applied later, so its lease is "unsettled": it must never back a lock
// that is not its current one's, and the caller revokes it (a revoked lease
// cannot be restarted). So the keeper never keeps alive a lease that may back
// someone else's lock: it restarts only leases whose owner is waiting on them
// or is about to write a lock on them, and forget waits for the last restart
// in flight before the lease changes hands.
//
// Like every etcd call of the server, the streams carry WithRequireLeader,
// and background restarts stop while the server is paused (a frozen server's
// claim leases expire, as they would under SIGSTOP).
type keeper struct {
	s *Server

	mu       sync.Mutex
	streams  [keeperStreams]*kstream
	inflight map[clientv3.LeaseID]*restart // sent, not answered; one per lease
	kept     map[clientv3.LeaseID]*kept
	next     int // round robin among equally good streams

	wake  chan struct{}
	recvs sync.WaitGroup
	done  chan struct{}
}

// kstream is one keep-alive stream.
type kstream struct {
	st       pb.Lease_LeaseKeepAliveClient
	cancel   context.CancelFunc
	sendMu   sync.Mutex    // a gRPC stream's Send is not safe for concurrent use
	proven   bool          // an answer came on it (guarded by keeper.mu)
	inflight int           // restarts sent on it and not answered (keeper.mu)
	latency  time.Duration // moving average of its answers' latency (keeper.mu)
}

// restart is one keep-alive request.
type restart struct {
	on   *kstream
	sent time.Time     // just before it was sent: the lease lives at least ttl from then
	done chan struct{} // closed once answered or failed
	ttl  time.Duration // after done: the granted TTL; 0: etcd has no such lease
	err  error         // after done: no answer came, the request may still be applied
}

// kept is a lease the keeper restarts in the background.
type kept struct {
	l        lease // since: when the last answered restart was sent
	every    time.Duration
	until    time.Time // zero: until forgotten
	gone     bool      // etcd answered that the lease does not exist
	unsettle bool      // a restart got no answer
}

func newKeeper(s *Server) *keeper {
	return &keeper{s: s, inflight: map[clientv3.LeaseID]*restart{}, kept: map[clientv3.LeaseID]*kept{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// run keeps the streams open and restarts the kept leases that are due,
// until ctx (the server's) ends.
func (k *keeper) run(ctx context.Context) {
	defer close(k.done)
	defer k.shutdown()
	t := time.NewTicker(keeperTick)
	defer t.Stop()
	for ctx.Err() == nil {
		if err := k.connect(ctx); err != nil {
			_ = k.s.backoffFor(ctx, retryBackoff)
		}
		k.probe()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-k.wake:
		}
		k.cancelOverdue()
		if k.s.checkpoint(ctx) != nil {
			return
		}
		for _, id := range k.due() {
			_, _ = k.sendOn(id, k.pick(false))
		}
	}
}

// connect opens the streams that are missing.
func (k *keeper) connect(ctx context.Context) error {
	cli := k.s.kv()
	if cli == nil {
		return errNoStream
	}
	for i := range k.streams {
		k.mu.Lock()
		has := k.streams[i] != nil
		k.mu.Unlock()
		if has {
			continue
		}
		sctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		st, err := pb.NewLeaseClient(cli.ActiveConnection()).LeaseKeepAlive(sctx)
		if err != nil {
			cancel()
			k.s.stats.etcdErrors.Add(1)
			return err
		}
		ks := &kstream{st: st, cancel: cancel}
		k.mu.Lock()
		k.streams[i] = ks
		k.mu.Unlock()
		k.recvs.Add(1)
		go k.recv(ks)
	}
	return nil
}

// recv applies the answers of ks until it breaks.
func (k *keeper) recv(ks *kstream) {
	defer k.recvs.Done()
	for {
		resp, err := ks.st.Recv()
		if err != nil {
			k.broken(ks, err)
			return
		}
		k.answered(ks, clientv3.LeaseID(resp.ID), time.Duration(resp.TTL)*time.Second)
	}
}

func (k *keeper) answered(ks *kstream, id clientv3.LeaseID, ttl time.Duration) {
	now := k.s.cfg.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	ks.proven = true
	r := k.inflight[id]
	if r == nil || r.on != ks {
		return
	}
	delete(k.inflight, id)
	ks.inflight--
	ks.latency += (now.Sub(r.sent) - ks.latency) / 8
	r.ttl = ttl
	close(r.done)
	if kp := k.kept[id]; kp != nil {
		kp.apply(r)
	}
}

// apply records the answer of r.
func (kp *kept) apply(r *restart) {
	switch {
	case r.err != nil:
		kp.unsettle = true
	case r.ttl <= 0:
		kp.gone = true
	default:
		kp.l.since, kp.l.ttl = r.sent, r.ttl
	}
}

// broken fails every restart in flight on ks, which has ended.
func (k *keeper) broken(ks *kstream, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	i := slices.Index(k.streams[:], ks)
	if i < 0 {
		return
	}
	k.streams[i] = nil
	ks.cancel()
	if k.s.ctx.Err() == nil {
		k.s.stats.etcdErrors.Add(1)
	}
	for id, r := range k.inflight {
		if r.on != ks {
			continue
		}
		r.err = err
		close(r.done)
		delete(k.inflight, id)
		if kp := k.kept[id]; kp != nil {
			kp.apply(r)
		}
	}
}

// cancelOverdue ends a stream on which a restart waited longer than
// EtcdTimeout for its answer (recv then fails the restarts in flight on it).
func (k *keeper) cancelOverdue() {
	now := k.s.cfg.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range k.inflight {
		if now.Sub(r.sent) > k.s.cfg.EtcdTimeout {
			r.on.cancel()
		}
	}
}

// shutdown ends the streams and waits for their readers.
func (k *keeper) shutdown() {
	k.mu.Lock()
	for _, ks := range k.streams {
		if ks != nil {
			ks.cancel()
		}
	}
	k.mu.Unlock()
	k.recvs.Wait()
}

// due returns the kept leases whose restart is due, and stops keeping those
// past their until.
func (k *keeper) due() []clientv3.LeaseID {
	now := k.s.cfg.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	var ids []clientv3.LeaseID
	for id, kp := range k.kept {
		switch {
		case kp.gone || kp.unsettle:
		case !kp.until.IsZero() && !now.Before(kp.until):
			delete(k.kept, id)
		case k.inflight[id] == nil && now.Sub(kp.l.since) >= kp.every:
			ids = append(ids, id)
		}
	}
	return ids
}

// probeLease is the lease id the probe of stream i restarts: etcd's lease
// ids are positive, so it answers "no such lease" (TTL 0) and changes
// nothing.
func probeLease(i int) clientv3.LeaseID { return clientv3.LeaseID(-1 - i) }

// probe restarts a lease that does not exist on each stream that has not
// answered anything yet: until a stream has, no acquire sends its restart
// on it with a txn (see healthyLocked).
func (k *keeper) probe() {
	k.mu.Lock()
	var todo []int
	for i, ks := range k.streams {
		if ks != nil && !ks.proven && k.inflight[probeLease(i)] == nil {
			todo = append(todo, i)
		}
	}
	k.mu.Unlock()
	for _, i := range todo {
		k.mu.Lock()
		ks := k.streams[i]
		k.mu.Unlock()
		_, _ = k.sendOn(probeLease(i), ks)
	}
}

// stall is how long a restart may wait for its answer before its stream is
// not trusted with an acquire's restart any more.
func (k *keeper) stall() time.Duration { return min(k.s.cfg.EtcdTimeout/2, 250*time.Millisecond) }

// healthyLocked reports whether ks answers: it answered since it was opened,
// and no restart on it has been waiting longer than stall. An acquire sends
// its restart with its grant txn only on a healthy stream; otherwise it
// restarts its lease first and waits (so that an unreachable etcd answers
// "unavailable" before any txn is sent, rather than "outcome unknown").
func (k *keeper) healthyLocked(ks *kstream, now time.Time) bool {
	if ks == nil || !ks.proven {
		return false
	}
	for _, r := range k.inflight {
		if r.on == ks && now.Sub(r.sent) > k.stall() {
			return false
		}
	}
	return true
}

// pick returns the stream to send a restart on: among the healthy ones (any
// open one unless healthy is asked), the one whose answers are expected
// soonest (its latency times its queue); nil when there is none.
func (k *keeper) pick(healthy bool) *kstream {
	now := k.s.cfg.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	var best *kstream
	var bestCost time.Duration
	for i := range k.streams {
		ks := k.streams[(k.next+i)%len(k.streams)]
		if ks == nil || (healthy && !k.healthyLocked(ks, now)) {
			continue
		}
		cost := (ks.latency + time.Microsecond) * time.Duration(1+ks.inflight)
		if best == nil || cost < bestCost {
			best, bestCost = ks, cost
		}
	}
	k.next++
	return best
}

// send restarts lease id now on a healthy stream, or returns the restart of
// it already in flight. errNoStream: nothing was sent.
func (k *keeper) send(id clientv3.LeaseID) (*restart, error) {
	k.mu.Lock()
	r := k.inflight[id]
	k.mu.Unlock()
	if r != nil {
		return r, nil
	}
	ks := k.pick(true)
	if ks == nil {
		return nil, errNoStream
	}
	return k.sendOn(id, ks)
}

// sendOn restarts lease id now on ks (or returns the restart of it in
// flight). errNoStream: ks is nil or closed.
func (k *keeper) sendOn(id clientv3.LeaseID, ks *kstream) (*restart, error) {
	k.mu.Lock()
	if r := k.inflight[id]; r != nil {
		k.mu.Unlock()
		return r, nil
	}
	if ks == nil || !slices.Contains(k.streams[:], ks) {
		k.mu.Unlock()
		return nil, errNoStream
	}
	r := &restart{on: ks, sent: k.s.cfg.Now(), done: make(chan struct{})}
	k.inflight[id] = r
	ks.inflight++
	k.mu.Unlock()
	if id > 0 {
		k.s.stats.leaseRestarts.Add(1)
	}
	ks.sendMu.Lock()
	err := ks.st.Send(&pb.LeaseKeepAliveRequest{ID: int64(id)})
	ks.sendMu.Unlock()
	if err != nil {
		k.broken(ks, err) // fails r too
	}
	return r, nil
}

// keep restarts l every `every` (measured from the last answered restart)
// until `until` (zero: until forgotten).
func (k *keeper) keep(l lease, every time.Duration, until time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kept[l.id] = &kept{l: l, every: every, until: until}
}

// setEvery changes how often a kept lease is restarted; a lease that is due
// under the new period is restarted at once.
func (k *keeper) setEvery(id clientv3.LeaseID, every time.Duration) {
	k.mu.Lock()
	kp := k.kept[id]
	if kp == nil || kp.every == every {
		k.mu.Unlock()
		return
	}
	kp.every = every
	due := k.s.cfg.Now().Sub(kp.l.since) >= every
	k.mu.Unlock()
	if due {
		select {
		case k.wake <- struct{}{}:
		default:
		}
	}
}

// alive reports whether id is kept and neither gone nor unsettled.
func (k *keeper) alive(id clientv3.LeaseID) bool {
	_, ok := k.state(id)
	return ok
}

// state is what the keeper knows of a kept lease now; ok is false when it is
// not kept, gone or unsettled.
func (k *keeper) state(id clientv3.LeaseID) (lease, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kp := k.kept[id]
	if kp == nil || kp.gone || kp.unsettle {
		return lease{}, false
	}
	return kp.l, true
}

// forget stops restarting id, waits for a restart of it in flight (at most
// until ctx ends) and returns the lease as the last answer left it, and its
// state: gone when etcd has no such lease, unsettled when a restart of it
// got no answer (the caller must then revoke it, never reuse it).
func (k *keeper) forget(ctx context.Context, id clientv3.LeaseID) (lease, leaseState) {
	k.mu.Lock()
	kp := k.kept[id]
	delete(k.kept, id)
	r := k.inflight[id]
	k.mu.Unlock()
	if kp == nil {
		return lease{id: id}, leaseUnsettled
	}
	if r != nil {
		select {
		case <-r.done:
			kp.apply(r)
		case <-ctx.Done():
			return kp.l, leaseUnsettled
		}
	}
	switch {
	case kp.unsettle:
		return kp.l, leaseUnsettled
	case kp.gone:
		return kp.l, leaseGone
	}
	return kp.l, leaseAlive
}

// wait waits for r's answer: the granted TTL from r.sent on, 0 when etcd
// has no such lease. ok is false when no answer came (the restart is
// unsettled).
func (k *keeper) wait(ctx context.Context, r *restart) (ttl time.Duration, ok bool) {
	select {
	case <-r.done:
		return r.ttl, r.err == nil
	case <-ctx.Done():
		return 0, false
	}
}
