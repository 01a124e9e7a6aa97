package lockserver

import (
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// leasePool keeps the leases of released locks (and of acquires that were
// refused) for reuse, keyed by their granted TTL in whole seconds.
//
// A lease grant and a lease revoke are Raft writes; restarting a kept lease
// with KeepAliveOnce is answered by the leader without one. So a lock cycle
// that takes its lease from the pool costs two Raft writes (grant txn,
// release txn) instead of four (grant, txn, txn, revoke).
//
// A kept lease holds no lock: a lease goes back only after a txn proved that
// its lock is gone (release) or was never written (a refused acquire). Its
// expiry is not known exactly (another lock server may have renewed it), so
// the pool keeps an upper bound of it and drops leases past that bound; a
// taker restarts the lease with KeepAliveOnce before using it and grants a
// fresh one when etcd answers "lease not found".
//
// leasePool is pure (time is passed in) and safe for concurrent use.
type leasePool struct {
	mu   sync.Mutex
	max  int
	free map[int64][]pooledLease // granted TTL (s) -> kept leases, last in first out
	n    int
}

type pooledLease struct {
	id       clientv3.LeaseID
	deadline time.Time // the lease has expired by then (unless a leader change extended it)
}

func newLeasePool(max int) *leasePool {
	return &leasePool{max: max, free: map[int64][]pooledLease{}}
}

// get takes a kept lease granted with ttlSecs that may still be alive at now.
func (p *leasePool) get(ttlSecs int64, now time.Time) (clientv3.LeaseID, bool) {
	if p == nil {
		return 0, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	stack := p.free[ttlSecs]
	for len(stack) > 0 {
		l := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		p.n--
		if now.Before(l.deadline) {
			p.setLocked(ttlSecs, stack)
			return l.id, true
		}
	}
	p.setLocked(ttlSecs, stack)
	return 0, false
}

func (p *leasePool) setLocked(ttlSecs int64, stack []pooledLease) {
	if len(stack) == 0 {
		delete(p.free, ttlSecs)
		return
	}
	p.free[ttlSecs] = stack
}

// put keeps a lease granted with ttlSecs that was alive at now (so it expires
// by now+ttlSecs at the latest). It reports false when the pool is full or
// off; the caller then revokes the lease.
func (p *leasePool) put(id clientv3.LeaseID, ttlSecs int64, now time.Time) bool {
	if p == nil || ttlSecs <= 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n >= p.max {
		// Drop what has certainly expired before refusing.
		for ttl, stack := range p.free {
			kept := stack[:0]
			for _, l := range stack {
				if now.Before(l.deadline) {
					kept = append(kept, l)
				}
			}
			p.n -= len(stack) - len(kept)
			p.setLocked(ttl, kept)
		}
		if p.n >= p.max {
			return false
		}
	}
	p.free[ttlSecs] = append(p.free[ttlSecs], pooledLease{id: id, deadline: now.Add(time.Duration(ttlSecs) * time.Second)})
	p.n++
	return true
}

// drain empties the pool and returns what it kept.
func (p *leasePool) drain() []clientv3.LeaseID {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []clientv3.LeaseID
	for _, stack := range p.free {
		for _, l := range stack {
			out = append(out, l.id)
		}
	}
	p.free, p.n = map[int64][]pooledLease{}, 0
	return out
}

// len is the number of kept leases.
func (p *leasePool) len() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}
