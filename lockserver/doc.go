// Package lockserver is the stateless HTTP lock server of locksim and the Go
// client every other part uses (SPEC §4).
//
// A Server keeps no lock state: every lock lives in etcd, reached through
// clientv3. The keys are
//
//	/locks/<resourceId>            hex SHA-256 of the lockToken, on the grant's lease
//	/lockinfo/<resourceId>         {"ownerId","ttl","acquiredAt"}, same lease, same txn
//	/waiters/<resourceId>#/<lease> a blocked acquire's place in the queue
//
// # Semantics
//
// Acquire grants an etcd lease of the requested ttl (etcd rounds up to whole
// seconds and to its minimum of 1.5 election timeouts; the answer's "ttl" and
// "expiresAt" report the granted TTL, measured from just before the grant was
// sent), then writes the lock in ONE txn that succeeds only if the lock key is
// absent and no waiter is queued. The fencingToken is the revision of that txn
// (the lock key's CreateRevision), so it strictly increases from grant to
// grant. The lockToken is "<lease id hex>.<160 random bits hex>" from
// crypto/rand; etcd stores only its hash. On any failure the lease is revoked,
// which also undoes a grant whose outcome is unknown.
//
// A blocking acquire (timeout > 0) queues a waiter key under its own lease
// (covering the timeout plus 2 s, so a crashed server's waiters leave the
// queue). The queue order is the waiter keys' CreateRevision, across all lock
// servers. The head waiter watches the lock key for deletion (release or
// lease expiry); every other waiter watches only its predecessor's key, so
// one release wakes one waiter and causes one grant txn. The head's grant txn
// compares that the lock is absent and that no older waiter exists, and
// deletes its waiter key. Nothing polls. On timeout the waiter leaves the
// queue and gets 409 lock_busy.
//
// Release is one compare-and-delete txn on the stored hash and lease. Renew
// restarts the lease (KeepAliveOnce) and then verifies ownership in a
// linearizable txn. etcd cannot change a lease's TTL: renew restores the
// granted TTL whatever "ttl" it is sent, and reports the TTL in effect.
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
// Server and Client are safe for concurrent use. Close is idempotent and
// returns once every handler and background cleanup has returned; it is
// prompt even while the server is paused.
package lockserver
