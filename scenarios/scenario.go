package scenarios

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/faults"
)

// DefaultVariant is the name of the single implicit variant of a scenario
// whose file has no `variants` block.
const DefaultVariant = "default"

// Balancer policies accepted in `topology.balancer`.
const (
	BalancerRoundRobin       = "round-robin"
	BalancerLeastConnections = "least-connections"
)

// UnsafeCheckThenSet is the only value of `lockServers.unsafe`: a
// deliberately broken, non-atomic read-then-write acquire (negative control).
const UnsafeCheckThenSet = "check-then-set"

// Verdicts accepted in `expect`.
const (
	Linearizable = "linearizable"
	Violated     = "violated"
)

// FinalHeal is the only non-empty value of `final`.
const FinalHeal = "heal"

// Defaults filled by Parse when a key is absent.
const (
	DefaultSeed        int64 = 1
	DefaultDuration          = 10 * time.Second
	DefaultEtcd              = 3
	DefaultLockServers       = 3
	DefaultClients           = 3
	DefaultBalancers         = 1
	DefaultBalancer          = BalancerRoundRobin
	DefaultTTL               = 2 * time.Second
	DefaultWait              = time.Second
	DefaultResource          = "order:12345"
	DefaultHold              = 100 * time.Millisecond
	DefaultThink             = 20 * time.Millisecond
	DefaultTickMs            = 10
	DefaultElectionMs        = 100
)

// Limits checked by Validate.
const (
	MaxLockServers = 16
	MaxClients     = 64
	MaxBalancers   = 8
	MinTTL         = time.Second
	MaxTTL         = time.Hour
	MaxWait        = 300 * time.Second
	MaxDuration    = 24 * time.Hour
	MaxSteps       = 1000
	MaxResources   = 64

	MinAdvertInterval = 10 * time.Millisecond
	MaxAdvertInterval = 10 * time.Second
)

// ErrUnknownVariant is returned by Resolve for a variant the scenario does not define.
var ErrUnknownVariant = errors.New("scenarios: unknown variant")

// Scenario is one parsed scenario file. Every field holds its effective
// value: absent keys carry the documented defaults.
type Scenario struct {
	Path        string // file name given to Parse/ParseFile (used in error messages)
	Name        string // `name`; defaults to the file's base name without extension
	Description string

	Seed     int64         // default 1
	Duration time.Duration // default 10s

	Topology    Topology
	Lock        Lock
	Workload    Workload
	Fencing     bool        // default true
	LockServers LockServers // teaching-only switches
	Raft        Raft
	VRRP        VRRP // the election of redundant balancers (topology.balancers >= 2)

	Variants []Variant     // in file order; empty means one implicit variant "default"
	Steps    []faults.Step // in file order; each Source names its file and line
	// Nemesis draws random faults from the seed; nil when absent. Its
	// topology (Members, LockServers, Clients) is the scenario's.
	Nemesis *faults.NemesisSpec
	Final   string // "" or "heal"

	// Expect is keyed by variant name; "default" when the file has no
	// variants and `expect` is at the top level. A variant without an entry
	// asserts nothing.
	Expect map[string]Expect

	pos map[string]int // key path ("steps[2].target") -> line, for Validate's messages
}

// Topology is the shape of the sandbox.
type Topology struct {
	Etcd        int    // etcd members; must be 3 (default 3)
	LockServers int    // 1..16 (default 3)
	Clients     int    // 1..64 (default 3)
	Balancers   int    // 1..8 (default 1); two or more share a virtual address through VRRP
	Balancer    string // round-robin (default) or least-connections
}

// Lock configures every acquire of the workload.
type Lock struct {
	TTL  time.Duration // lease TTL, >= 1s (default 2s); etcd rounds it up to whole seconds
	Wait time.Duration // how long an acquire may block, 0..300s (default 1s)
}

// Workload is what every simulated client does in a loop: acquire one of
// the resources, read the protected resource, wait Hold, write it, release,
// wait Think.
type Workload struct {
	Resources []string      // default ["order:12345"]; 1..64 valid resource ids
	Hold      time.Duration // between reading and writing the protected resource (default 100ms)
	Think     time.Duration // between cycles (default 20ms)
	Cycles    int           // cap per client; 0 = until the run ends
}

// LockServers holds switches applied to every lock server.
type LockServers struct {
	Unsafe string // "" or "check-then-set" (teaching-only negative control)
	Auth   bool   // give every simulated client its own API key
	// Command, when set, runs every lock server as its own process from this
	// command line instead of locksim's own: {listen}, {name} and {etcd}
	// are filled in (see package sim/external).
	Command string
}

// Raft sets the etcd members' timing.
type Raft struct {
	TickMs     int // heartbeat interval (default 10)
	ElectionMs int // election timeout, >= 5*TickMs (default 100)
}

// VRRP sets the election of redundant balancers.
type VRRP struct {
	// AdvertInterval is how often the master advertises; 0 (default) = the
	// sandbox pace's (100ms fast, 1s classroom).
	AdvertInterval time.Duration
	// NoPreempt is `preempt: false` (keepalived's nopreempt): a backup of
	// higher priority accepts a lower master it hears instead of taking
	// over. The default, preempt, is VRRP's.
	NoPreempt bool
}

// Variant is one run of the same schedule with some switches overridden.
type Variant struct {
	Name    string
	Fencing *bool   // nil: the scenario's Fencing
	Unsafe  *string // nil: the scenario's LockServers.Unsafe ("" switches it off)
	Preempt *bool   // nil: the scenario's vrrp.preempt
}

// Expect is what the checker must conclude for one variant.
type Expect struct {
	Lock       string // "linearizable", "violated" or "" (not asserted)
	Resource   string // same
	MaxUnknown *int   // at most this many operations with unknown outcome; nil = not asserted
}

// Effective is the configuration of one variant after its overrides.
type Effective struct {
	Variant string
	Fencing bool
	Unsafe  string
	Preempt bool   // the balancers' VRRP preemption
	Expect  Expect // zero value when the variant asserts nothing
}

// Line returns the line of a key in the file ("lockServers.unsafe",
// "variants.broken.lockServers.unsafe", "steps[2].target"), or 0 when the
// key is not written there.
func (s *Scenario) Line(key string) int { return s.pos[key] }

// VariantNames returns the variants to run, in file order, or
// ["default"] when the scenario has none.
func (s *Scenario) VariantNames() []string {
	if len(s.Variants) == 0 {
		return []string{DefaultVariant}
	}
	names := make([]string, len(s.Variants))
	for i, v := range s.Variants {
		names[i] = v.Name
	}
	return names
}

// Resolve returns the switches and expectations of one variant. The empty
// name means the first variant (or "default").
func (s *Scenario) Resolve(variant string) (Effective, error) {
	if variant == "" {
		variant = s.VariantNames()[0]
	}
	eff := Effective{Variant: variant, Fencing: s.Fencing, Unsafe: s.LockServers.Unsafe, Preempt: !s.VRRP.NoPreempt, Expect: s.Expect[variant]}
	if len(s.Variants) == 0 {
		if variant != DefaultVariant {
			return Effective{}, fmt.Errorf("%w %q (the scenario has only %q)", ErrUnknownVariant, variant, DefaultVariant)
		}
		return eff, nil
	}
	for _, v := range s.Variants {
		if v.Name != variant {
			continue
		}
		if v.Fencing != nil {
			eff.Fencing = *v.Fencing
		}
		if v.Unsafe != nil {
			eff.Unsafe = *v.Unsafe
		}
		if v.Preempt != nil {
			eff.Preempt = *v.Preempt
		}
		return eff, nil
	}
	return Effective{}, fmt.Errorf("%w %q (want one of %s)", ErrUnknownVariant, variant, quoteList(s.VariantNames()))
}

// Plan returns the fault runner's plan: the scripted steps and, with a
// nemesis, its draws from seed, in firing order (by At, ties in file order,
// scripted before drawn).
func (s *Scenario) Plan(seed int64) []faults.Step {
	steps := slices.Clone(s.Steps)
	if s.Nemesis != nil {
		rng := rand.New(rand.NewPCG(uint64(seed), 0x6e656d))
		steps = append(steps, faults.Nemesis(*s.Nemesis, s.Duration, rng)...)
	}
	slices.SortStableFunc(steps, func(a, b faults.Step) int { return cmp.Compare(a.At, b.At) })
	return steps
}

// Counts returns the count of each kind of component, as faults.Step.Check
// wants it.
func (t Topology) Counts() faults.Topology {
	return faults.Topology{component.Etcd: t.Etcd, component.LockServer: t.LockServers, component.Client: t.Clients, component.Balancer: t.Balancers}
}
