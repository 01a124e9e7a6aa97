// Package clients runs the simulated applications of a locksim sandbox.
// Each client loops the design's lock cycle against the lock service:
//
//	acquire (through the balancer) -> read the protected resource -> hold
//	-> check its lease against its own clock -> write -> release -> think
//
// and records every operation, with its outcome, in a history.Recorder for
// the checker. An answer it did not get (a timeout, a dropped connection,
// outcome_unknown) is recorded as unknown, never as a failure (OutcomeOf).
//
// A client can be paused at its next checkpoint like a process frozen by a
// long GC pause (work done stays done, nothing new happens until Resume),
// and its wall clock can be skewed, so that it misjudges when its lease
// ends. Both are the faults a lease alone cannot survive; fencing tokens can.
//
// # Usage
//
//	c := clients.New(clients.Config{Name: "client-1", Resource: "order:1", Lock: lc,
//		Protected: store, Recorder: rec, Cycle: clients.Cycle{TTL: 2 * time.Second, ...}})
//	go c.Run(ctx)
//	c.Pause() // ... c.Resume()
//	st := c.State()
//
// # Concurrency
//
// Run is called once, on its own goroutine; every other method is safe to
// call concurrently with it.
package clients
