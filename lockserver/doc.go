// Package lockserver is the stateless HTTP lock server of locksim and the Go
// client every other part uses.
//
// A Server keeps no lock state: every lock lives in etcd, reached through
// clientv3. The keys are (see LockPrefix and the constants beside it)
//
//	/locks/<resourceId>                      hex SHA-256 of the lockToken, on the lock's lease
//	/lockinfo/<resourceId>                   {"ownerId","ttl","acquiredAt"}, same lease, written with it
//	/waiters/<resourceId>#/<claim>.<random>  a blocked acquire's registration, on its server's claim lease
//	/lockrel/<resourceId>                    release receipt: SHA-256 of the released token, on a receipt lease
//
// # Semantics
//
// Acquire takes an etcd lease of the requested ttl (a pooled one, or a new
// grant; etcd rounds up to whole seconds and to its minimum of 1.5 election
// timeouts), then writes the lock in ONE txn that succeeds only if the lock
// key is absent and no waiter is queued. A pooled lease is restarted on one
// of the server's long-lived keep-alive streams (the keeper): the restart is
// sent together with the grant txn, and the answer waits for both, so the
// restart costs no round trip of its own and no Raft write, and the answer's
// "ttl" and "expiresAt" still report the granted TTL from just before the
// restart was sent. (When the keeper has no stream that answers, the acquire
// restarts its lease first and waits, so that an unreachable etcd answers
// 503 before any txn is sent.) The fencingToken is the revision of the txn
// that wrote the grant: the ModRevision of the lock record, which a renew
// keeps by naming it in the record; it strictly increases from grant to
// grant. The lockToken is 160 random bits from crypto/rand, in hex; etcd
// stores only its hash, and every check of a token compares that hash in the
// txn it guards. A token names one grant, not a lease. After lock_busy the
// lease is kept for reuse; after any other failure it is revoked, which also
// undoes a grant whose outcome is unknown, and a lease whose restart got no
// answer is revoked too (a restart still in the network could otherwise
// extend another lock later).
//
// Leases are pooled (Config.LeasePool): a txn that deletes a lock (release)
// or moves it (renew, hand-over) proves that the lock's lease carries
// nothing any more, so the lease goes back to a pool keyed by granted TTL,
// and the next acquire or renew with that TTL restarts it instead of
// granting a new one. An acquire/release cycle costs two Raft writes instead
// of four (grant, txn, txn, revoke). Only leases that carry nothing, or only
// their restarter's own lock, are ever restarted: a lease that backs a lock
// is never kept alive for it, so a stale request cannot extend a lock that
// is not its own.
//
// A blocking acquire (timeout > 0) whose first txn finds the lock taken
// registers in the queue: a waiter key whose value carries what a release
// needs to hand the lock over (the token's hash the lock will get, and the
// lease it will be on, which the waiter's server restarts while it waits:
// every 100 ms at the head of the queue). On a lock this server saw
// contended lately, the registration is the else branch of the first txn;
// otherwise a second txn writes it. Waiter keys live on claim leases: short
// leases (2 s) that the server's keeper restarts while their waiters may
// still wait (until their deadlines plus 1.5 s), shared by the server's
// waiters whose deadlines fit. A waiter whose server crashed or froze leaves
// the queue within about two seconds; one whose server could not delete it,
// within about four seconds after its deadline. The queue order is the waiter keys'
// CreateRevision, across all lock servers. The head waiter watches the lock
// key; every other waiter watches only its predecessor's key, so one
// release wakes one waiter. Nothing polls. Watches start at etcd's current
// revision and are followed by one read: a watch from a past revision is
// "unsynced" and etcd catches it up only every 100 ms.
//
// Release is one txn: compare the stored hash, end the grant, and write a
// release receipt (the released token's hash) that tells a watcher this
// release, not an expiry, ended the grant. When the lock had waiters lately,
// the release first reads the head of the queue (serializable, from the
// server's own member) and the same txn hands the lock over: it writes that
// waiter as the holder (its hash, on its registered lease, and a new record)
// and deletes its registration, provided the registration is still there
// and still the oldest; otherwise it deletes the lock, and the head takes
// it itself with a grant txn when its watch sees the deletion (so does the
// head after a lease expiry). The lock key is put, not deleted and created
// (etcd refuses both on one key in one txn), so the new grant's fencing
// token is the hand-over's revision, the ModRevision of its record. The
// waiter learns it from its watch: one Raft write and no lease call on the
// path from one holder to the next. A handed-over lock is promised what its
// lease has left (a little less than the TTL asked for, as the head
// restarts it every 100 ms); its record says it lasts at least 0 s
// (Record.Lasts), since only the waiter's server knows when it last
// restarted the lease. A waiter that times out leaves the queue in a txn
// that also reads the lock, so a hand-over that came first is answered (a
// little late) rather than lost; one whose client left gives a handed-over
// lock back (a release). Receipts live on a receipt lease of their server
// (Config.ReceiptTTL, default 60 s, replaced after half of it, never kept
// alive), so each stays in etcd between half of ReceiptTTL and ReceiptTTL,
// or until the resource's next direct grant deletes it.
//
// Renew gives the lock the TTL it asks for ("ttl" optional: without it, the
// TTL in effect; the same limits and rounding as acquire) and keeps its
// fencingToken and lockToken. etcd cannot change a lease's TTL, so renew
// moves the lock: one txn, guarded by the token's hash and the lease the
// lock is on, puts the lock key and record on a lease of the asked TTL (a
// pooled lease's restart is answered first: a lease that expired in between
// would end the lock early). A renew whose lock is gone changes nothing and
// answers 409 not_holder. A renew never shortens a lock: when the lease in
// effect already has at least the asked TTL left, the lock stays on it, and
// the answer's "ttl" is that remaining time. "expiresAt" is always at least
// "ttl" after the renew was received.
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
// every end of a grant (Ended; a hand-over ends one grant and records the
// next). The sandbox shows the first and settles
// requests whose outcome a client could not learn from the others (Record).
// A long run keeps only the recent past in memory (Retain) and streams the
// whole record to a file (SpillTo) that Record reads back. The key
// layout both sides use is the constants LockPrefix, InfoPrefix,
// WaiterPrefix and ReleasedPrefix.
//
// Config.TLS is the etcd client's TLS config, for members that serve their
// client URLs over https:// (the CA that signed their certificates and, if
// they require one, this server's client certificate); NewObserver takes the
// same. Both refuse a TLS config with an http:// endpoint, which clientv3
// would reach in plain text. A refused handshake shows only as etcd calls
// timing out (503 unavailable), so ProbeTLS checks a TLS config against the
// members once, before serving: it names the member and the TLS error
// (unknown authority, certificate required, not TLS at all) and stays
// silent about members it cannot reach.
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
