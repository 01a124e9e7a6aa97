// Package lockserver is the stateless HTTP lock server of locksim and the Go
// client every other part uses (SPEC §4).
//
// A Server keeps no lock state: every lock lives in etcd, reached through
// clientv3. The keys are
//
//	/locks/<resourceId>            hex SHA-256 of the lockToken, on the grant's lease
//	/lockinfo/<resourceId>         {"ownerId","ttl","acquiredAt"}, same lease, same txn
//	/waiters/<resourceId>#/<lease>.<random> a blocked acquire's place in the queue
//
// # Semantics
//
// Acquire takes an etcd lease of the requested ttl (a pooled one restarted,
// or a new grant; etcd rounds up to whole seconds and to its minimum of 1.5
// election timeouts; the answer's "ttl" and "expiresAt" report the granted
// TTL, measured from just before the grant or restart was sent), then writes the lock in ONE txn that succeeds only if the lock key is
// absent and no waiter is queued. The fencingToken is the revision of that txn
// (the lock key's CreateRevision), so it strictly increases from grant to
// grant. The lockToken is "<lease id hex>.<160 random bits hex>" from
// crypto/rand; etcd stores only its hash. After lock_busy the lease is kept
// for reuse; after any other failure it is revoked, which also undoes a grant
// whose outcome is unknown.
//
// Leases are pooled (Config.LeasePool): a release's txn proves the lock is
// gone, so its lease goes back to a pool keyed by granted TTL, and the next
// acquire with that TTL restarts it with KeepAliveOnce (the leader answers
// without a Raft write) instead of granting a new one. A cycle costs two Raft
// writes instead of four (grant, txn, txn, revoke). Release receipts live
// under such leases until the resource's next grant deletes them.
//
// A blocking acquire (timeout > 0) whose first txn finds the lock taken
// queues in that same txn: its Else branch writes a waiter key under the
// acquire's own lease, which the server keeps alive while it waits (so a
// crashed or frozen server's waiters leave the queue when that lease
// expires). The queue order is the waiter keys' CreateRevision, across all
// lock servers. The head waiter watches the lock key for deletion (release or
// lease expiry); every other waiter watches only its predecessor's key, so
// one release wakes one waiter and causes one grant txn. The head's grant txn
// compares that the lock is absent and that no older waiter exists, and
// deletes its waiter key. Nothing polls. On timeout the waiter leaves the
// queue and gets 409 lock_busy. Watches start at etcd's current revision and
// are followed by one read: a watch from a past revision is "unsynced" and
// etcd catches it up only every 100 ms, which on a contended key (the
// revision moves between a read and a watch) delayed every hand-over.
//
// Release is one compare-and-delete txn on the stored hash and lease. Renew
// verifies ownership in a linearizable txn, restarts the lease
// (KeepAliveOnce) and verifies again: the first check keeps an old token from
// restarting a pooled lease that now backs another lock. etcd cannot change
// a lease's TTL: renew restores the granted TTL whatever "ttl" it is sent,
// and reports the TTL in effect.
// GET /locks/{resourceId} reads linearizably; its expiresAt comes from the
// lease's remaining TTL, which etcd reports in whole seconds, and it adds
// "waiters", the number of queued blocking acquires.
//
// Errors map to HTTP only at the edge: 400/405/413/415/404 for rejected
// requests (nothing changes in etcd), 409 lock_busy / not_holder, 503
// unavailable (with Retry-After: 1) when the request cannot have taken
// effect, 504 outcome_unknown when a write did not answer within
// Config.EtcdTimeout and may or may not have taken effect.
//
// An Observer watches the lock records and release receipts in etcd with a
// client of its own (NewObserver): who holds each lock in etcd now (Held),
// every grant etcd recorded (Grants), every release receipt (Released) and
// every end of a grant (Ended). The sandbox shows the first and settles
// requests whose outcome a client could not learn from the others. The key
// layout both sides use is the constants LockPrefix, InfoPrefix,
// WaiterPrefix and ReleasedPrefix.
//
// Config.Unsafe = UnsafeCheckThenSet swaps acquire for a broken
// read-then-write (a negative control the checker must catch).
//
// # Usage
//
//	s, err := lockserver.New(lockserver.Config{Name: "lockserver-1", Endpoints: etcdURLs})
//	if err != nil { ... }
//	if err := s.Start(ctx); err != nil { ... }
//	defer s.Close()
//
//	c := &lockserver.Client{BaseURL: s.URL(), ClientID: "client-1"}
//	g, err := c.Acquire(ctx, "order:12345", 30*time.Second, 10*time.Second)
//	switch {
//	case errors.Is(err, lockserver.ErrBusy):           // held by someone else
//	case errors.Is(err, lockserver.ErrOutcomeUnknown): // may hold it: record as unknown
//	case errors.Is(err, lockserver.ErrUnavailable):    // certainly does not hold it
//	}
//	defer c.Release(ctx, "order:12345", g.LockToken)
//
// A crash is Close (abrupt: connections are cut, in-flight work is cancelled,
// nothing is cleaned up in etcd); a restart is New + Start with the same
// Listen address. Pause/Resume freeze the server like SIGSTOP.
//
// # Concurrency
//
// Server, Client and Observer are safe for concurrent use. Close is idempotent and
// returns once every handler and background cleanup has returned; it is
// prompt even while the server is paused.
package lockserver
