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
//	broken := history.Unexplained(ops, record)         // grants etcd made to acquires answered "no effect"
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
// # Explaining violations
//
// With Options.Explain, Check explains every violated partition
// (Result.Explanations, json "explanations"): the few operations that break
// it, the anomaly they show, the faults around them and the lease facts, in
// words a student can follow:
//
//	res := history.Check(ops, history.Options{Explain: true, Annotations: faults, VisualizePath: "history.html"})
//	for _, e := range res.Explanations {
//		fmt.Println(e.Kind, e.Faults, e.Text) // stale-write-accepted [1] Stale write accepted on order:1, ...
//		// e.Operations: the records (as in history.jsonl), e.Index: their lines;
//		// e.VisualizationPath: history.explain-1.html, porcupine's view of just them.
//	}
//
// Shrink. Delta debugging (ddmin) over the partition's units, each
// candidate checked by porcupine, after a binary search for the shortest
// window of units (in call order) that is still violated. A candidate must
// never turn a linearizable history into a violation, or the explanation
// would blame what was removed: a lock unit is a whole lock cycle (every
// operation carrying one lock token), a resource unit one read-modify-write,
// plain read or blind write, and every removed write of a value a kept
// operation read stays in the candidate as a blind write within its own
// interval (Explanation.Context). Afterwards renews, "not held" answers and
// operations called after all others returned are dropped, and
// read-modify-writes whose read does not matter become blind writes, one at
// a time while still violated; a set without "not held" answers is
// preferred. Only sets porcupine proves Illegal are kept, so the result is
// 1-minimal (removing any one unit makes it linearizable) but not
// necessarily the smallest. Records keep their real times and outcomes; an
// unknown operation stays unknown. The search is bounded by
// Options.ExplainBudget (default DefaultExplainBudget) for all partitions
// together and each candidate by a tenth of what is left; Truncated says
// it stopped early or a candidate was undecided, Unproven that not even the
// whole partition was decided in time.
//
// Name it. Kind is decided from the shrunk set alone, first match wins: in
// the lock model double grant (both grants must have held at one moment),
// lock lost early (a "not held" answer before the lease could expire),
// fencing token went back, release or renew by a non-holder; in the
// resource model stale write accepted (a write accepted after a higher
// fencing token was, which fencing would have rejected), lost update (two
// read-modify-writes read the same value), read of a value nobody wrote;
// else other. Model says which check caught it.
//
// Blame the faults. Annotations are the fault windows (ID, Fault, Target,
// Start, End, Source such as "step 1 (gc-pause.yaml:21)"). A fault on a
// client counts when its window overlaps that client's operations in the
// set; a fault on anything else (an etcd member, a lock server, the
// balancer, a link) counts when it overlaps the set's time span at all,
// because the history does not record which lock server or member served a
// request: the words say so. Recoveries (heal, resume, restart) never
// count. Leases gives, for each token in play, the grant, the earliest
// expiry (call + TTL, pushed on by renews) and the latest (return + TTL).
//
// Say it. Text tells the set's operations, the grants of their tokens, the
// end of a lease its client still acted after, and the blamed faults in time
// order, then what went wrong; times are seconds on the history's clock
// with one decimal, or milliseconds when it all happened within half a
// second.
//
// # Concurrency
//
// A Recorder and its Pendings are safe for concurrent use. Check, the JSONL
// functions, Resolve and Generate are pure functions of their
// arguments; Check runs partitions (and explanations) in parallel on up to
// GOMAXPROCS goroutines and returns after all of them are done, except that after a
// timeout porcupine's own search goroutine may outlive Check by a moment (it
// stops at its next step).
package history
