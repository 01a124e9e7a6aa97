// Package resource is the protected resource of a locksim sandbox: the thing
// the lock is meant to protect, a counter per resource id that the simulated
// clients read, hold and write back incremented.
//
// With fencing on (the default), the Store checks fencing tokens the way
// Kleppmann describes: every read and write must carry a token at least as
// high as the highest the Store has seen for that id, and every accepted
// request raises that mark. A client that was paused past its lease and
// comes back with an old token is then rejected (ErrStale) instead of
// overwriting the newer holder's work. With fencing off, nothing is checked:
// the teaching switch that shows why a lease alone is not enough.
//
// # Usage
//
//	r := resource.New(true)
//	v, err := r.Read("order:1", token)   // ErrStale when token is old
//	err = r.Write("order:1", token, v+1)
//
// # Concurrency
//
// A Store is safe for concurrent use; each Read and Write is atomic.
package resource
