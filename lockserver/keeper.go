package lockserver

import (
	"context"
	"errors"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// keeperTick is how often the keeper looks for leases due for a restart.
const keeperTick = 50 * time.Millisecond

// errNoStream: the keeper has no keep-alive stream right now (etcd
// unreachable, or reconnecting); the caller restarts its lease another way.
var errNoStream = errors.New("lockserver: no keep-alive stream")

// keeper restarts leases over one long-lived LeaseKeepAlive stream per lock
// server, instead of a KeepAliveOnce per restart (which opens a gRPC stream
// for a single message and closes it). etcd's leader answers a restart
// without a Raft write; a follower forwards it to the leader.
//
// Two kinds of callers use it:
//
//   - an acquire (or a renew) that took a lease from the pool sends one
//     restart (send) and, instead of waiting for its answer before the grant
//     txn, sends the txn at once and waits for both (settle): the restart is
//     off the critical path, and the answer still says how long the lease
//     lives from the moment the restart was sent, so expiresAt promises
//     exactly the granted TTL, as with KeepAliveOnce;
//   - leases that must stay alive while nothing else happens to them (keep):
//     the claim leases a server's waiters are registered under, and the
//     lease each waiter's lock will be on once a release hands it over. Those
//     are restarted every `every` until `until`, and forget stops that and
//     reports what the last answer said.
//
// A restart answered with TTL 0 means etcd has no such lease. A restart that
// got no answer (the stream broke, or no answer within EtcdTimeout) may still
// be applied later, so its lease is "unsettled": it must never back a lock
// that is not its current one's, and the caller revokes it (a revoked lease
// cannot be restarted). So the keeper never keeps alive a lease that may back
// someone else's lock: it restarts only leases whose owner is waiting on them
// or is about to write a lock on them, and forget waits for the last restart
// in flight before the lease changes hands.
//
// Like every etcd call of the server, the stream carries WithRequireLeader,
// and background restarts stop while the server is paused (a frozen server's
// claim leases expire, as they would under SIGSTOP).
type keeper struct {
	s *Server

	mu       sync.Mutex
	stream   pb.Lease_LeaseKeepAliveClient // nil while there is none
	cancel   context.CancelFunc            // ends stream
	inflight map[clientv3.LeaseID]*restart // sent on stream, not answered; one per lease
	kept     map[clientv3.LeaseID]*kept
	proven   bool // an answer came on stream

	sendMu sync.Mutex // a gRPC stream's Send is not safe for concurrent use
	wake   chan struct{}
	recvs  sync.WaitGroup
	done   chan struct{}
}

// restart is one keep-alive request.
type restart struct {
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

// run keeps a stream open and restarts the kept leases that are due, until
// ctx (the server's) ends.
func (k *keeper) run(ctx context.Context) {
	defer close(k.done)
	defer k.shutdown()
	t := time.NewTicker(keeperTick)
	defer t.Stop()
	for ctx.Err() == nil {
		if err := k.connect(ctx); err != nil {
			_ = k.s.backoffFor(ctx, retryBackoff)
			continue
		}
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
			_, _ = k.sendOn(id)
		}
		k.probe()
	}
}

// connect opens a stream when there is none.
func (k *keeper) connect(ctx context.Context) error {
	k.mu.Lock()
	has := k.stream != nil
	k.mu.Unlock()
	if has {
		return nil
	}
	cli := k.s.kv()
	if cli == nil {
		return errNoStream
	}
	sctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	st, err := pb.NewLeaseClient(cli.ActiveConnection()).LeaseKeepAlive(sctx)
	if err != nil {
		cancel()
		k.s.stats.etcdErrors.Add(1)
		return err
	}
	k.mu.Lock()
	k.stream, k.cancel, k.proven = st, cancel, false
	k.mu.Unlock()
	k.recvs.Add(1)
	go k.recv(st)
	return nil
}

// recv applies the answers of st until it breaks.
func (k *keeper) recv(st pb.Lease_LeaseKeepAliveClient) {
	defer k.recvs.Done()
	for {
		resp, err := st.Recv()
		if err != nil {
			k.broken(st, err)
			return
		}
		k.answered(clientv3.LeaseID(resp.ID), time.Duration(resp.TTL)*time.Second)
	}
}

func (k *keeper) answered(id clientv3.LeaseID, ttl time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.proven = true
	r := k.inflight[id]
	if r == nil {
		return
	}
	delete(k.inflight, id)
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

// broken fails every restart in flight on st, which has ended.
func (k *keeper) broken(st pb.Lease_LeaseKeepAliveClient, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stream != st {
		return
	}
	k.stream = nil
	k.cancel()
	if k.s.ctx.Err() == nil {
		k.s.stats.etcdErrors.Add(1)
	}
	for id, r := range k.inflight {
		r.err = err
		close(r.done)
		if kp := k.kept[id]; kp != nil {
			kp.apply(r)
		}
	}
	clear(k.inflight)
}

// cancelOverdue ends a stream on which a restart waited longer than
// EtcdTimeout for its answer (recv then fails the restarts in flight).
func (k *keeper) cancelOverdue() {
	now := k.s.cfg.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range k.inflight {
		if now.Sub(r.sent) > k.s.cfg.EtcdTimeout && k.cancel != nil {
			k.cancel()
			return
		}
	}
}

// shutdown ends the stream and waits for its reader.
func (k *keeper) shutdown() {
	k.mu.Lock()
	if k.cancel != nil {
		k.cancel()
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

// probeLease is the lease id a probe restarts: etcd has no lease 0 (it means
// "no lease"), so it answers "no such lease" (TTL 0) and changes nothing.
const probeLease = clientv3.LeaseID(0)

// probe restarts lease 0 on a stream that has not answered anything yet:
// until it has, restarts are not sent on it with a txn (see healthy).
func (k *keeper) probe() {
	k.mu.Lock()
	need := k.stream != nil && !k.proven && k.inflight[probeLease] == nil
	k.mu.Unlock()
	if need {
		_, _ = k.sendOn(probeLease)
	}
}

// stall is how long a restart may wait for its answer before the stream is
// not trusted with an acquire's restart any more.
func (k *keeper) stall() time.Duration { return min(k.s.cfg.EtcdTimeout/2, 250*time.Millisecond) }

// healthyLocked reports whether the stream answers: it answered since it
// was opened, and no restart has been waiting longer than stall. An acquire
// sends its restart with its grant txn only on a healthy stream; otherwise it
// restarts its lease first and waits (so that an unreachable etcd answers
// "unavailable" before any txn is sent, rather than "outcome unknown").
func (k *keeper) healthyLocked(now time.Time) bool {
	if k.stream == nil || !k.proven {
		return false
	}
	for _, r := range k.inflight {
		if now.Sub(r.sent) > k.stall() {
			return false
		}
	}
	return true
}

// send restarts lease id now on a healthy stream, or returns the restart of
// it already in flight. errNoStream: nothing was sent.
func (k *keeper) send(id clientv3.LeaseID) (*restart, error) {
	k.mu.Lock()
	if r := k.inflight[id]; r != nil {
		k.mu.Unlock()
		return r, nil
	}
	ok := k.healthyLocked(k.s.cfg.Now())
	k.mu.Unlock()
	if !ok {
		return nil, errNoStream
	}
	return k.sendOn(id)
}

// sendOn restarts lease id now on the current stream (or returns the
// restart of it in flight). errNoStream: there is no stream.
func (k *keeper) sendOn(id clientv3.LeaseID) (*restart, error) {
	k.mu.Lock()
	if r := k.inflight[id]; r != nil {
		k.mu.Unlock()
		return r, nil
	}
	st := k.stream
	if st == nil {
		k.mu.Unlock()
		return nil, errNoStream
	}
	r := &restart{sent: k.s.cfg.Now(), done: make(chan struct{})}
	k.inflight[id] = r
	k.mu.Unlock()
	if id != probeLease {
		k.s.stats.leaseRestarts.Add(1)
	}
	k.sendMu.Lock()
	err := st.Send(&pb.LeaseKeepAliveRequest{ID: int64(id)})
	k.sendMu.Unlock()
	if err != nil {
		k.broken(st, err) // fails r too
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
