// Package lockserver is the stateless HTTP lock server of locksim and the Go
// client every other part uses.
//
// A Server keeps no lock state: every lock lives in etcd, reached through
// clientv3. The keys are (see LockPrefix and the constants beside it)
//
//	/locks/<resourceId>                      hex SHA-256 of the lockToken, on the lock's lease
//	/lockinfo/<resourceId>                   {"ownerId","ttl","acquiredAt"}, same lease, written with it
//	/waiters/<resourceId>#/<lease>.<random>  a blocked acquire's place in the queue, on its waiter lease
//	/lockrel/<resourceId>                    release receipt: SHA-256 of the released token, on a receipt lease
//
// # Semantics
//
// Acquire takes an etcd lease of the requested ttl (a pooled one restarted,
// or a new grant; etcd rounds up to whole seconds and to its minimum of 1.5
// election timeouts; the answer's "ttl" and "expiresAt" report the granted
// TTL, measured from just before the grant or restart was sent), then writes
// the lock in ONE txn that succeeds only if the lock key is absent and no
// waiter is queued. The fencingToken is the revision of that txn (the lock
// key's CreateRevision), so it strictly increases from grant to grant. The
// lockToken is 160 random bits from crypto/rand, in hex; etcd stores only
// its hash, and every check of a token compares that hash in the txn it
// guards. A token names one grant, not a lease. After lock_busy the lease is
// kept for reuse; after any other failure it is revoked, which also undoes a
// grant whose outcome is unknown.
//
// Leases are pooled (Config.LeasePool): a txn that deletes a lock (release)
// or moves it (renew) proves that the lock's lease carries nothing any more,
// so the lease goes back to a pool keyed by granted TTL, and the next acquire
// or renew with that TTL restarts it with KeepAliveOnce (the leader answers
// without a Raft write) instead of granting a new one. An acquire/release
// cycle costs two Raft writes instead of four (grant, txn, txn, revoke).
// Only a lease taken from the pool is ever restarted; a lease that backs a
// lock is never kept alive, so a stale request cannot extend a lock that is
// not its own.
//
// A blocking acquire (timeout > 0) whose first txn finds the lock taken
// queues in that same txn: its Else branch writes a waiter key on a waiter
// lease that ends between the acquire's deadline and 1.5 s after it (whole
// seconds; etcd's minimum TTL may make it longer), shared by this server's
// waiters whose deadlines fit. Nothing keeps that lease alive: it outlives
// the wait, and a waiter whose server crashed or froze leaves the queue
// within about two seconds after its timeout, whatever the lock's TTL.
// Under load a server grants a couple of waiter leases per second, and a
// blocking acquire usually makes no lease call for its waiter key. The
// queue order is the
// waiter keys' CreateRevision, across all lock servers. The head waiter
// watches the lock key for deletion (release or lease expiry); every other
// waiter watches only its predecessor's key, so one release wakes one waiter
// and causes one grant txn. The head's grant txn compares that the lock is
// absent and that no older waiter exists, and deletes its waiter key.
// Nothing polls. On timeout the waiter leaves the queue and gets 409
// lock_busy. Watches start at etcd's current revision and are followed by
// one read: a watch from a past revision is "unsynced" and etcd catches it
// up only every 100 ms, which on a contended key (the revision moves between
// a read and a watch) delayed every hand-over.
//
// Release is one txn: compare the stored hash, delete the lock key and
// record, and write a release receipt (the released token's hash) that tells
// a watcher this release, not an expiry, ended the grant. Receipts live on a
// receipt lease of their server (Config.ReceiptTTL, default 60 s, replaced
// after half of it, never kept alive), so each stays in etcd between half of
// ReceiptTTL and ReceiptTTL, or until the resource's next grant deletes it.
//
// Renew gives the lock the TTL it asks for ("ttl" optional: without it, the
// TTL in effect; the same limits and rounding as acquire) and keeps its
// fencingToken and lockToken. etcd cannot change a lease's TTL, so renew
// moves the lock: one txn, guarded by the token's hash and the lease the
// lock is on, puts the lock key and record on a lease of the asked TTL (put
// keeps a key's CreateRevision). A renew whose lock is gone changes nothing
// and answers 409 not_holder. A renew never shortens a lock: when the lease
// in effect already has at least the asked TTL left, the lock stays on it,
// and the answer's "ttl" is that remaining time. "expiresAt" is always at
// least "ttl" after the renew was received.
//
// GET /locks/{resourceId} reads linearizably; its expiresAt comes from the
// lease's remaining TTL, which etcd reports in whole seconds, and it adds
// "waiters", the number of queued blocking acquires.
//
// Every etcd call, clean-ups included, carries WithRequireLeader: a member
// cut off from its leader answers at once, and the call is retried on
// another member.
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
// Config.Recipe = RecipeMutex swaps the lock logic for etcd's own recipe,
// concurrency.Mutex, behind the same HTTP API (see RecipeMutex): a class
// can grade the design's lock server and etcd's recipe under the same
// faults (`locksim serve lockserver --recipe etcd-mutex`).
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
