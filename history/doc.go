// Package history records operations on the lock service and the protected
// resource, stores them as JSON lines, and checks them for linearizability
// with porcupine, in the manner of etcd's tests/robustness (model, validate).
//
// # Usage
//
//	rec := history.NewRecorder(time.Now())
//	p := rec.Begin("client-1", history.OpAcquire, "order:1", history.Input{TTL: &ttl})
//	... // the HTTP request
//	p.End(history.OK, history.Output{LockToken: tok, FencingToken: rev, TTL: &granted})
//
//	ops := rec.Ops()                                   // pending ops are Unknown
//	ops, n := history.Resolve(ops, record)             // optional: settle unknowns from etcd's record
//	res := history.Check(ops, history.Options{VisualizePath: "history.html"})
//	_ = history.WriteJSONL(w, ops)                    // history.jsonl, one operation a line
//
// # Outcomes
//
// OK and Fail carry a return time; Unknown has none (the request may or may
// not have taken effect, at any time after its call) and is never coerced
// into a failure. A failed release or renew claims "this token does not hold
// the lock" only when its code says so (ClaimsNotHeld: "not_held",
// "not_holder", "lock_lost", "lost", "expired", "conflict", or no code and no
// error text); other failures (unavailable, rate limited, ...) were rejected
// without effect and claim nothing.
//
// # The lock model
//
// Per resource, the lock is free or held by a token with a fencing token and
// an earliest expiry E. Time is real: each operation carries its call and
// return times. An etcd lease is granted no earlier than the acquire's call
// and never expires early, so E = max(call, time the lock could first have
// been taken) + granted TTL (Output.TTL, else Input.TTL); a renew moves E to
// at least renewCall + TTL.
//
//   - acquire ok: allowed when free, or when held and the acquire returned at
//     or after E (the old lease may have expired by then); its fencing token
//     must exceed every one granted before on the resource.
//   - acquire fail (busy, timeout): always allowed. It is liveness, not
//     safety, and is not given to porcupine.
//   - acquire unknown: not given to porcupine either. The token of such a
//     grant is known to nobody, so "it took effect" can never explain
//     anything that "it did not" cannot; it only forbids more. Settle such
//     acquires with Resolve when etcd knows what happened.
//   - release ok / renew ok: only by the holder's token.
//   - release or renew fail ("not held") by the holder: only at or after E
//     (the lease may have expired); the lock is then free. By anyone else:
//     allowed, nothing changes.
//   - release unknown: it freed the lock or not (both states are kept).
//     Renew unknown is dropped: an extended lease only forbids more.
//
// The model also keeps a lower bound on "now": once a grant or a "not held"
// answer implies that a lease expired at E, every operation linearized after
// it must return at or after E.
//
// # The resource model
//
// Per resource, an atomic read-modify-write register. A client's read and
// its next write on the same resource with the same fencing token form one
// RMW operation from the read's call to the write's return; it is legal when
// the value read equals the register, and leaves the value written (an
// unknown write may or may not have applied). A read whose write was
// rejected or failed, or that has no write, is a plain read over its own
// interval; a rejected or failed read is a no-op; a write without a read is a
// blind write. An acquire, a release or another read by the client ends the
// pairing window; a renew does not. The initial value is unknown: the first
// operation linearized fixes it.
//
// # Checking
//
// Check partitions by model and resource and gives each partition to
// porcupine within Options.Timeout. A search that runs out of time is
// Unknown, never Linearizable. With VisualizePath set, one
// verbose search over all partitions also yields porcupine's HTML, with the
// Annotations drawn in (a target that names a client lands on its row); only
// partitions it leaves undecided are searched again. Overlap and Counts are
// computed from the raw history and are informational.
//
// porcupine's search is exponential in the number of operations that may be
// linearized anywhere, which unknown outcomes (returning "never") are. Keep
// contention per key modest, and resolve unknown outcomes from the system of
// record with Resolve before checking.
//
// # Concurrency
//
// A Recorder and its Pendings are safe for concurrent use. Check, the JSONL
// functions, Resolve and Generate are pure functions of their
// arguments; Check runs partitions in parallel on up to GOMAXPROCS
// goroutines and returns after all of them are done, except that after a
// timeout porcupine's own search goroutine may outlive Check by a moment (it
// stops at its next step).
package history
