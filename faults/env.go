package faults

import (
	"context"
	"time"
)

// Clock is the time source of a Runner and an Injector.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock (fake inside a testing/synctest bubble).
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Env is what faults need from the sandbox; package sim implements it over
// the real components. Names are component names (package component). Every
// method but Wait must return promptly (Restart within ctx).
type Env interface {
	// Resolve maps a role ("etcd:leader", "etcd:follower", "lockserver:any",
	// "client:holder", "balancer:master") to a name. It is called only for
	// targets containing ':', when the step fires.
	Resolve(target string) (string, error)
	// Members lists every component a partition may involve (etcd members,
	// lock servers and balancers): "isolate X" cuts X from all the others
	// (balancers only when X is one, see CutsFor).
	Members() []string

	Crash(name string) error
	Restart(ctx context.Context, name string) error
	Pause(name string) error
	Resume(name string) error

	// Cut stops traffic from -> to (one direction); Mend undoes one Cut.
	// Partitions are applied as sets of cuts (see CutsFor); the Injector
	// counts overlapping cuts and mends a link only when no active partition
	// still needs it.
	Cut(from, to string) error
	Mend(from, to string) error
	// Delay slows from -> to; latency and jitter 0 remove the delay.
	Delay(from, to string, latency, jitter time.Duration) error
	// ClockSkew offsets a client's clock by d (0 restores it).
	ClockSkew(client string, d time.Duration) error
	// Heal undoes every cut, delay and skew (not crashes or pauses), also
	// those not made through faults.
	Heal() error
	// Wait blocks until c holds and returns who satisfied it (for example
	// the holder), or returns ctx's error. It must return promptly once ctx
	// is done.
	Wait(ctx context.Context, c Condition) (string, error)
}

// Event is one applied (or failed) fault. Times are offsets from the
// Injector's Start.
type Event struct {
	ID       int           `json:"id"`
	Fault    string        `json:"fault"`
	Target   string        `json:"target"`   // as written: "etcd:leader", "isolate etcd:leader", "lockserver-1<->etcd-2"
	Resolved string        `json:"resolved"` // who was hit: "etcd-2", "[etcd-2] | [etcd-1 etcd-3 lockserver-1]"
	Start    time.Duration `json:"startNs"`
	End      time.Duration `json:"endNs"`  // 0 while Active
	Active   bool          `json:"active"` // the fault is still in effect
	Note     string        `json:"note,omitempty"`
	Source   string        `json:"source,omitempty"`
	Error    string        `json:"error,omitempty"` // non-empty when applying (or undoing) the fault failed
}
