package scenarios

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/sim/external"
)

var (
	resourceID  = regexp.MustCompile(`^[A-Za-z0-9:._/-]{1,256}$`)
	variantName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	balancers   = []string{BalancerRoundRobin, BalancerLeastConnections}
	verdicts    = []string{Linearizable, Violated}
)

// validator checks a decoded Scenario.
type validator struct {
	*problems
	s *Scenario
}

// line returns the line of a key path, falling back to its parents.
func (v *validator) line(path string) int {
	for path != "" {
		if l, ok := v.s.pos[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func (v *validator) at(path, format string, args ...any) {
	v.add(v.line(path), format, args...)
}

// Validate checks a scenario's values: ranges, targets against the
// topology, fault-specific fields, variants and expectations. Parse calls
// it; call it again after changing a Scenario by hand.
func (s *Scenario) Validate() error {
	file := s.Path
	if file == "" {
		file = s.Name
	}
	v := &validator{problems: &problems{file: file}, s: s}
	v.top()
	v.topology()
	v.lockAndWorkload()
	v.variants()
	for i, st := range s.Steps {
		v.step(i, st)
	}
	v.nemesis()
	v.expect()
	return v.err()
}

func (v *validator) top() {
	s := v.s
	if strings.TrimSpace(s.Name) == "" {
		v.at("name", "name is empty")
	}
	if s.Duration < time.Second || s.Duration > MaxDuration {
		v.at("duration", "duration must be between 1s and %s, got %s", MaxDuration, s.Duration)
	}
	if s.LockServers.Unsafe != "" && s.LockServers.Unsafe != UnsafeCheckThenSet {
		v.at("lockServers.unsafe", "unknown unsafe mode %q (want %s, or leave it out)", s.LockServers.Unsafe, UnsafeCheckThenSet)
	}
	if c := s.LockServers.Command; c != "" {
		if err := external.CheckCommand(c); err != nil {
			v.at("lockServers.command", "lockServers.command: %v", err)
		}
		if s.LockServers.Unsafe != "" || s.LockServers.Auth {
			v.at("lockServers.command", "lockServers.unsafe and lockServers.auth are switches of locksim's own lock server; they cannot go with lockServers.command")
		}
		for _, vr := range s.Variants {
			if vr.Unsafe != nil && *vr.Unsafe != "" {
				v.at("variants."+vr.Name+".lockServers.unsafe", "lockServers.unsafe is a switch of locksim's own lock server; it cannot go with lockServers.command")
			}
		}
	}
	if s.Final != "" && s.Final != FinalHeal {
		v.at("final", "final must be %q or left out, got %q", FinalHeal, s.Final)
	}
	if s.Raft.TickMs < 1 || s.Raft.TickMs > 1000 {
		v.at("raft.tickMs", "raft.tickMs must be between 1 and 1000, got %d", s.Raft.TickMs)
	}
	if s.Raft.ElectionMs < 5*s.Raft.TickMs || s.Raft.ElectionMs > 50000 {
		v.at("raft.electionMs", "raft.electionMs must be at least 5 times tickMs (%d) and at most 50000, got %d",
			5*s.Raft.TickMs, s.Raft.ElectionMs)
	}
}

func (v *validator) topology() {
	t := v.s.Topology
	if t.Etcd != 3 {
		v.at("topology.etcd", "topology.etcd must be 3: the sandbox always runs exactly 3 etcd members, got %d", t.Etcd)
	}
	if t.LockServers < 1 || t.LockServers > MaxLockServers {
		v.at("topology.lockServers", "topology.lockServers must be between 1 and %d, got %d", MaxLockServers, t.LockServers)
	}
	if t.Clients < 1 || t.Clients > MaxClients {
		v.at("topology.clients", "topology.clients must be between 1 and %d, got %d", MaxClients, t.Clients)
	}
	if !slices.Contains(balancers, t.Balancer) {
		v.at("topology.balancer", "unknown balancer %q (%s)", t.Balancer, suggest(t.Balancer, balancers))
	}
	if t.Balancers < 1 || t.Balancers > MaxBalancers {
		v.at("topology.balancers", "topology.balancers must be between 1 and %d, got %d", MaxBalancers, t.Balancers)
	}
	if _, set := v.s.pos["vrrp"]; set && t.Balancers < 2 {
		v.at("vrrp", "vrrp needs topology.balancers of 2 or more (one balancer has nobody to elect)")
	}
	if i := v.s.VRRP.AdvertInterval; i != 0 && (i < MinAdvertInterval || i > MaxAdvertInterval) {
		v.at("vrrp.advertInterval", "vrrp.advertInterval must be between %s and %s, got %s", MinAdvertInterval, MaxAdvertInterval, i)
	}
}

func (v *validator) lockAndWorkload() {
	l, w := v.s.Lock, v.s.Workload
	if l.TTL < MinTTL || l.TTL > MaxTTL {
		v.at("lock.ttl", "lock.ttl must be between %s and %s (etcd leases count whole seconds), got %s", MinTTL, MaxTTL, l.TTL)
	}
	if l.Wait < 0 || l.Wait > MaxWait {
		v.at("lock.wait", "lock.wait must be between 0s and %s, got %s", MaxWait, l.Wait)
	}
	if len(w.Resources) == 0 || len(w.Resources) > MaxResources {
		v.at("workload.resources", "workload.resources needs 1 to %d resource ids, got %d", MaxResources, len(w.Resources))
	}
	seen := map[string]bool{}
	for i, r := range w.Resources {
		path := fmt.Sprintf("workload.resources[%d]", i)
		switch {
		case !resourceID.MatchString(r):
			v.at(path, "resource id %q must be 1-256 characters of A-Z a-z 0-9 : . _ / -", r)
		case seen[r]:
			v.at(path, "resource %q is listed twice", r)
		}
		seen[r] = true
	}
	if w.Hold < 0 {
		v.at("workload.hold", "workload.hold must not be negative")
	}
	if w.Think < 0 {
		v.at("workload.think", "workload.think must not be negative")
	}
	if w.Cycles < 0 {
		v.at("workload.cycles", "workload.cycles must not be negative, got %d", w.Cycles)
	}
}

func (v *validator) variants() {
	seen := map[string]bool{}
	for _, vr := range v.s.Variants {
		path := "variants." + vr.Name
		switch {
		case !variantName.MatchString(vr.Name):
			v.at(path, "variant name %q must be a short word of letters, digits, '.', '_' or '-'", vr.Name)
		case seen[vr.Name]:
			v.at(path, "variant %q is defined twice", vr.Name)
		}
		seen[vr.Name] = true
		if vr.Unsafe != nil && *vr.Unsafe != "" && *vr.Unsafe != UnsafeCheckThenSet {
			v.at(path+".lockServers.unsafe", "unknown unsafe mode %q (want %s, or null to switch it off)", *vr.Unsafe, UnsafeCheckThenSet)
		}
		if vr.Preempt != nil && v.s.Topology.Balancers < 2 {
			v.at(path+".vrrp", "variant %q sets vrrp, which needs topology.balancers of 2 or more", vr.Name)
		}
	}
}

func (v *validator) expect() {
	names := v.s.VariantNames()
	for _, name := range sortedKeys(v.s.Expect) {
		e := v.s.Expect[name]
		path := "expect." + name
		if len(v.s.Variants) == 0 {
			path = "expect"
		}
		if !slices.Contains(names, name) {
			v.at(path, "expect names variant %q, which is not defined (%s)", name, oneOf(names))
			continue
		}
		if e.Lock != "" && !slices.Contains(verdicts, e.Lock) {
			v.at(path+".lock", "expect lock: %q is not a verdict (%s)", e.Lock, oneOf(verdicts))
		}
		if e.Resource != "" && !slices.Contains(verdicts, e.Resource) {
			v.at(path+".resource", "expect resource: %q is not a verdict (%s)", e.Resource, oneOf(verdicts))
		}
		if e.MaxUnknown != nil && *e.MaxUnknown < 0 {
			v.at(path+".maxUnknown", "expect maxUnknown must not be negative, got %d", *e.MaxUnknown)
		}
	}
}

func (v *validator) nemesis() {
	n := v.s.Nemesis
	if n == nil {
		return
	}
	if n.Every <= 0 || n.Every > v.s.Duration {
		v.at("nemesis.every", "nemesis.every must be more than 0s and at most the duration (%s), got %s", v.s.Duration, n.Every)
	}
	if n.For <= 0 || n.For > n.Every {
		v.at("nemesis.for", "nemesis.for must be more than 0s and at most nemesis.every (%s), got %s", n.Every, n.For)
	}
	if len(n.Faults) == 0 {
		v.at("nemesis", "nemesis.faults is empty (%s)", oneOf(faults.NemesisFaults))
	}
	seen := map[string]bool{}
	for i, f := range n.Faults {
		path := fmt.Sprintf("nemesis.faults[%d]", i)
		switch {
		case !slices.Contains(faults.NemesisFaults, f):
			v.at(path, "unknown nemesis fault %q (%s)", f, suggest(f, faults.NemesisFaults))
		case seen[f]:
			v.at(path, "nemesis fault %q is listed twice", f)
		}
		seen[f] = true
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
