// Package conformance is a battery of checks of the lock HTTP API, run
// against any base URL: a lock server of locksim's own, one of yours in any
// language, or a balancer in front of several. It checks what README's API
// section promises, one named check at a time: the documented JSON of every
// answer, every status and code of the error table (and that a rejected
// request changes nothing), grants with fencing tokens that increase per
// resource, lock_busy after the timeout, owner-only release and renew,
// renew keeping the fencing token, expiry of a lock nobody released, a
// blocked acquire woken by a release, and waiters served in arrival order.
// With Config.Unavailable (a way to take etcd's quorum away, which `locksim
// grade` provides) it also checks 503 unavailable or outcome_unknown and a
// /health of 503.
//
// An answer that is not the documented JSON (not JSON, a 200 without a
// lockToken, an error without a code) fails its check with a
// *ProtocolError (errors.Is ErrNotTheAPI): the implementation does not
// speak the API at all, which `locksim grade` reports as bad input. Probe is
// the quick form of that test, one GET, which the sandbox runs on every
// lock server that is not locksim's own before it starts the workload.
//
// # Usage
//
//	rep := conformance.Run(ctx, conformance.Config{BaseURL: "http://127.0.0.1:7001"})
//	for _, c := range rep.Checks {
//		fmt.Println(c.Name, c.Result, c.Detail)
//	}
//	if !rep.Pass() { ... }
//
// The checks use resource ids under Config.Prefix (a random one by
// default), so the battery can run against a service in use.
//
// # Concurrency
//
// Run runs its checks one after another (a check may start a few
// goroutines of its own, and returns when they are done). Probe and Run are
// safe to call concurrently.
package conformance
