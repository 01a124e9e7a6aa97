package faults

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/internal/words"
)

// Fault kinds of a Step: the `fault` of a scenario step, of a nemesis draw
// and of a click in the web page.
const (
	FaultCrash     = "crash"      // stop a component abruptly (etcd member, lock server, balancer)
	FaultRestart   = "restart"    // start a crashed component again
	FaultPause     = "pause"      // freeze a client, a lock server or a balancer
	FaultResume    = "resume"     // undo pause
	FaultPartition = "partition"  // cut links: isolate, groups, bridge or from/to
	FaultDelay     = "delay"      // slow a link
	FaultHeal      = "heal"       // undo every partition, delay and clock skew
	FaultClockSkew = "clock-skew" // shift a client's clock
)

// Faults lists every fault kind, in the order the documentation uses.
var Faults = []string{FaultCrash, FaultRestart, FaultPause, FaultResume, FaultPartition, FaultDelay, FaultHeal, FaultClockSkew}

// StepFields are the fields of a Step that depend on its fault, by their
// names in a scenario file. Every step also has at, when, fault and note.
var StepFields = []string{"target", "isolate", "groups", "bridge", "from", "to", "link", "latency", "jitter", "for", "restartAfter", "skew"}

// Takes lists the StepFields each fault takes.
var Takes = map[string][]string{
	FaultCrash:     {"target", "restartAfter"},
	FaultRestart:   {"target"},
	FaultPause:     {"target", "for"},
	FaultResume:    {"target"},
	FaultPartition: {"isolate", "groups", "bridge", "from", "to", "for"},
	FaultDelay:     {"link", "latency", "jitter", "for"},
	FaultHeal:      {},
	FaultClockSkew: {"target", "skew", "for"},
}

var (
	// ErrInvalidStep reports a Step that cannot be applied (unknown fault, missing field).
	ErrInvalidStep = errors.New("faults: invalid step")
	// ErrUnknownMember reports a partition naming a component that is not in Env.Members.
	ErrUnknownMember = errors.New("faults: unknown member")
	// ErrConditionTimeout reports a Step whose When condition did not hold in time; the step is
	// then not applied.
	ErrConditionTimeout = errors.New("faults: condition not met in time")
)

// Step is one fault: a step of a scenario file, a draw of the Nemesis, or a
// click in the web page (a step fired now, see Injector.Apply).
//
// Targets are component names ("etcd-2", "lockserver-1", "client-3",
// "balancer", or "balancer-1" when there are several) or roles
// ("etcd:leader", "etcd:follower", "lockserver:any", "client:holder",
// "balancer:master"); roles are resolved through Env.Resolve when the step
// fires.
type Step struct {
	At    time.Duration // offset from the run's start
	When  *Condition    // optional: after At, wait until this holds
	Fault string        // one of Faults

	Target string // crash, restart, pause, resume, clock-skew

	// Partition: exactly one of Isolate, Groups, Bridge or From+To; Bridge
	// may come with two Groups naming the halves explicitly.
	Isolate string
	Groups  [][]string
	Bridge  string
	From    string
	To      string

	Link            string        // delay: "a->b" (one direction) or "a<->b" (both)
	Latency, Jitter time.Duration // delay

	For          time.Duration // how long the fault lasts; 0 = until undone by a later step or a heal
	RestartAfter time.Duration // crash: restart after this long
	Skew         time.Duration // clock-skew: offset added to the client's clock (may be negative)
	Note         string        // narration shown with the fault
	Source       string        // where it came from: "step 3 (file.yaml:14)", "nemesis", "web"
}

// Condition makes a Step wait until a client reaches a phase of its lock
// cycle, for example until it holds the lock and has just read the protected
// resource. Phase is one of component.TriggerPhases.
type Condition struct {
	Holder  string        // client-N; "" or "client:holder" = any client
	Phase   string        // one of component.TriggerPhases
	Timeout time.Duration // 0 = Runner.WaitTimeout
}

// Span is how long the step's fault lasts (For, or RestartAfter for a
// crash); 0 = until undone.
func (s Step) Span() time.Duration {
	if s.Fault == FaultCrash {
		return s.RestartAfter
	}
	return s.For
}

// Problem is one thing wrong with a Step, tied to the field it concerns
// (by its name in a scenario file: "target", "when.holder"; "" for the step
// as a whole).
type Problem struct {
	Field string
	Msg   string
}

func (p Problem) Error() string { return p.Msg }

// Topology counts the components of each kind (component.Etcd: 3, ...),
// so that Check can tell "etcd-4" does not exist.
type Topology map[string]int

// Validate reports whether s names a known fault with the fields it needs
// and targets it can hit (Check without a topology). Roles stay unresolved.
func (s Step) Validate() error {
	probs := s.Check(nil)
	if len(probs) == 0 {
		return nil
	}
	errs := make([]error, len(probs))
	for i, p := range probs {
		errs[i] = fmt.Errorf("%w: %s", ErrInvalidStep, p.Msg)
	}
	return errors.Join(errs...)
}

// Check lists every problem of s: an unknown fault, fields the fault does
// not take or lacks, targets it cannot hit, a malformed partition or link.
// With a topology, named components must also exist in it.
func (s Step) Check(top Topology) []Problem {
	c := &stepCheck{st: &s, top: top}
	if s.When != nil {
		c.when(s.When)
	}
	for _, d := range []struct {
		field string
		value time.Duration
	}{{"at", s.At}, {"for", s.For}, {"restartAfter", s.RestartAfter}, {"latency", s.Latency}, {"jitter", s.Jitter}} {
		if d.value < 0 {
			c.problem(d.field, "%s must not be negative", d.field)
		}
	}
	takes, known := Takes[s.Fault]
	if !known {
		if s.Fault == "" {
			c.problem("fault", "step has no \"fault\" (%s)", words.OneOf(Faults))
		} else {
			c.problem("fault", "unknown fault %q (%s)", s.Fault, words.Suggest(s.Fault, Faults))
		}
		return c.probs
	}
	c.unused(takes)
	switch s.Fault {
	case FaultCrash:
		c.target("target", s.Target, ruleCrash)
	case FaultRestart:
		c.target("target", s.Target, ruleRestart)
	case FaultPause:
		c.target("target", s.Target, rulePause)
	case FaultResume:
		c.target("target", s.Target, ruleResume)
	case FaultPartition:
		c.partition()
	case FaultDelay:
		c.delay()
	case FaultClockSkew:
		c.target("target", s.Target, ruleClockSkew)
		if s.Skew == 0 {
			c.problem("skew", "clock-skew needs a non-zero skew (e.g. skew: -3s: the client's clock runs 3 s behind)")
		}
	}
	return c.probs
}

// targetRule says which targets a field accepts: per kind, "N" for named
// components and the accepted roles.
type targetRule map[string][]string

var (
	ruleCrash = targetRule{component.Etcd: {"N", component.RoleLeader, component.RoleFollower}, component.LockServer: {"N", component.RoleAny},
		component.Balancer: {"N", component.RoleMaster}}
	ruleRestart = targetRule{component.Etcd: {"N"}, component.LockServer: {"N"}, component.Balancer: {"N"}}
	rulePause   = targetRule{component.Client: {"N", component.RoleHolder}, component.LockServer: {"N", component.RoleAny},
		component.Balancer: {"N", component.RoleMaster}}
	ruleResume  = targetRule{component.Client: {"N"}, component.LockServer: {"N"}, component.Balancer: {"N"}}
	ruleIsolate = targetRule{component.Etcd: {"N", component.RoleLeader, component.RoleFollower}, component.LockServer: {"N", component.RoleAny},
		component.Balancer: {"N", component.RoleMaster}}
	ruleGroup    = targetRule{component.Etcd: {"N"}, component.LockServer: {"N"}, component.Balancer: {"N"}}
	ruleBridge   = targetRule{component.Etcd: {"N", component.RoleLeader, component.RoleFollower}}
	ruleDirected = targetRule{component.Etcd: {"N", component.RoleLeader, component.RoleFollower}, component.LockServer: {"N", component.RoleAny},
		component.Balancer: {"N", component.RoleMaster}}
	ruleClockSkew = targetRule{component.Client: {"N", component.RoleHolder}}
	ruleHolder    = targetRule{component.Client: {"N"}}
)

// kindOrder is the order in which a rule lists its kinds.
var kindOrder = []string{component.Etcd, component.LockServer, component.Client, component.Balancer}

func (r targetRule) String() string {
	var forms []string
	for _, k := range kindOrder {
		for _, f := range r[k] {
			switch {
			case k == component.Balancer && f == "N":
				forms = append(forms, k, k+"-N")
			case f == "N":
				forms = append(forms, k+"-N")
			default:
				forms = append(forms, k+":"+f)
			}
		}
	}
	if len(forms) < 2 {
		return strings.Join(forms, "")
	}
	return strings.Join(forms[:len(forms)-1], ", ") + " or " + forms[len(forms)-1]
}

func (r targetRule) allows(t component.Target) bool {
	form := "N"
	if t.IsRole() {
		form = t.Role
	}
	return slices.Contains(r[t.Kind], form)
}

// stepCheck collects the problems of one step.
type stepCheck struct {
	st    *Step
	top   Topology
	probs []Problem
}

func (c *stepCheck) problem(field, format string, args ...any) {
	c.probs = append(c.probs, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// unused rejects fields set for a fault that does not take them.
func (c *stepCheck) unused(takes []string) {
	st := c.st
	set := map[string]bool{
		"target": st.Target != "", "isolate": st.Isolate != "", "groups": len(st.Groups) > 0, "bridge": st.Bridge != "",
		"from": st.From != "", "to": st.To != "", "link": st.Link != "", "latency": st.Latency != 0, "jitter": st.Jitter != 0,
		"for": st.For != 0, "restartAfter": st.RestartAfter != 0, "skew": st.Skew != 0,
	}
	for _, k := range StepFields {
		if set[k] && !slices.Contains(takes, k) {
			c.problem(k, "%s does not take %q (%s)", st.Fault, k, TakesText(takes))
		}
	}
}

// TakesText says which fields a fault takes, for messages.
func TakesText(keys []string) string {
	if len(keys) == 0 {
		return "it takes only at, when and note"
	}
	return "it takes " + strings.Join(keys, ", ")
}

func (c *stepCheck) when(w *Condition) {
	if w.Holder == "" {
		c.problem("when", "when needs holder: client-N (the client whose lock cycle is watched)")
	} else {
		c.target("when.holder", w.Holder, ruleHolder)
	}
	if !slices.Contains(component.TriggerPhases, w.Phase) {
		if w.Phase == "" {
			c.problem("when", "when needs phase (%s)", words.OneOf(component.TriggerPhases))
		} else {
			c.problem("when.phase", "unknown phase %q (%s)", w.Phase, words.Suggest(w.Phase, component.TriggerPhases))
		}
	}
	if w.Timeout < 0 {
		c.problem("when.timeout", "when.timeout must not be negative")
	}
}

// target checks that a target is well formed, allowed here, and (with a
// topology) exists. It returns the parsed target and whether it is valid.
func (c *stepCheck) target(field, s string, rule targetRule) (component.Target, bool) {
	if s == "" {
		c.problem(field, "%s needs %s (%s)", c.st.Fault, field, rule)
		return component.Target{}, false
	}
	t, err := component.ParseTarget(s)
	if err != nil {
		c.problem(field, "%s: unknown target %q (want %s)", field, s, rule)
		return component.Target{}, false
	}
	if !rule.allows(t) {
		c.problem(field, "%s: %s cannot be %q here (want %s)", c.st.Fault, field, s, rule)
		return component.Target{}, false
	}
	if !c.exists(field, t) {
		return component.Target{}, false
	}
	return t, true
}

// exists checks a named target against the topology, if there is one.
// One balancer is "balancer"; two or more are balancer-1..balancer-N.
func (c *stepCheck) exists(field string, t component.Target) bool {
	if c.top == nil || t.IsRole() {
		return true
	}
	if t.Kind == component.Balancer {
		switch n := c.top[component.Balancer]; {
		case t.Index == 0 && n > 1:
			c.problem(field, "%s: %q is ambiguous: the topology has %d balancers, balancer-1..balancer-%d (or say balancer:master)", field, t.Name, n, n)
			return false
		case t.Index > 0 && n <= 1:
			c.problem(field, "%s: %q does not exist (the topology has one balancer, named \"balancer\")", field, t.Name)
			return false
		}
	}
	if t.Index == 0 {
		return true
	}
	if count := c.top[t.Kind]; t.Index > count {
		c.problem(field, "%s: %q does not exist (the topology has %s-1..%s-%d)", field, t.Name, t.Kind, t.Kind, count)
		return false
	}
	return true
}

func (c *stepCheck) partition() {
	st := c.st
	forms := 0
	for _, set := range []bool{st.Isolate != "", len(st.Groups) > 0 && st.Bridge == "", st.Bridge != "", st.From != "" || st.To != ""} {
		if set {
			forms++
		}
	}
	if forms != 1 {
		c.problem("", "partition needs exactly one of isolate, groups, bridge, or from+to (got %d)", forms)
		return
	}
	switch {
	case st.Isolate != "":
		c.target("isolate", st.Isolate, ruleIsolate)
	case st.Bridge != "":
		c.target("bridge", st.Bridge, ruleBridge)
		if len(st.Groups) != 0 {
			if len(st.Groups) != 2 {
				c.problem("groups", "bridge takes two groups (the halves) or none")
			}
			for _, g := range st.Groups {
				if slices.Contains(g, st.Bridge) {
					c.problem("groups", "the bridge must not be in a half")
				}
			}
			c.groups(0)
		}
	case len(st.Groups) > 0:
		c.groups(2)
	default:
		if st.From == "" || st.To == "" {
			c.problem("", "a one-way partition needs both from and to")
			return
		}
		from, ok1 := c.target("from", st.From, ruleDirected)
		to, ok2 := c.target("to", st.To, ruleDirected)
		switch {
		case !ok1 || !ok2:
		case st.From == st.To:
			c.problem("to", "from and to are both %q", st.From)
		case from.Kind == component.LockServer && to.Kind == component.LockServer:
			c.problem("to", "lock servers do not talk to each other: one side of from/to must be an etcd member")
		case !component.Connected(from.Kind, to.Kind):
			c.problem("to", "%s and %s do not talk to each other directly (links: etcd<->etcd, lockserver<->etcd, balancer<->lockserver, balancer<->balancer)", from.Kind, to.Kind)
		}
	}
}

// groups checks a partition's groups: at least min of them, disjoint,
// non-empty, of names that can be partitioned.
func (c *stepCheck) groups(min int) {
	groups := c.st.Groups
	if len(groups) < min {
		c.problem("groups", "groups needs at least two groups, e.g. [[etcd-1], [etcd-2, etcd-3]]")
		return
	}
	seen := map[string]bool{}
	for _, g := range groups {
		if len(g) == 0 {
			c.problem("groups", "groups: a group is empty")
			continue
		}
		for _, name := range g {
			if _, ok := c.target("groups", name, ruleGroup); !ok {
				continue
			}
			if seen[name] {
				c.problem("groups", "groups: %q is in more than one group", name)
			}
			seen[name] = true
		}
	}
}

func (c *stepCheck) delay() {
	st := c.st
	if st.Link == "" {
		c.problem("", "delay needs link (\"a->b\" or \"a<->b\", e.g. etcd-1<->etcd-2)")
	} else if a, b, _, ok := component.SplitLink(st.Link); ok && a == b {
		c.problem("link", "link %q joins %s to itself", st.Link, a)
	} else if links, err := component.ParseLink(st.Link); err != nil {
		c.problem("link", "link %q: want \"a->b\" or \"a<->b\" between named components, e.g. etcd-1<->etcd-2 or lockserver-1->etcd-3", st.Link)
	} else {
		c.link(links[0])
	}
	if st.Latency <= 0 {
		c.problem("latency", "delay needs latency > 0 (e.g. latency: 50ms)")
	}
}

// link checks that a delayed link joins two named components that talk to
// each other directly.
func (c *stepCheck) link(l component.Link) {
	from, err1 := component.ParseTarget(l.From)
	to, err2 := component.ParseTarget(l.To)
	if err1 != nil || err2 != nil || from.IsRole() || to.IsRole() {
		c.problem("link", "link %q: want \"a->b\" or \"a<->b\" between named components, e.g. etcd-1<->etcd-2 or lockserver-1->etcd-3", c.st.Link)
		return
	}
	if !c.exists("link", from) || !c.exists("link", to) {
		return
	}
	if !component.Connected(from.Kind, to.Kind) {
		c.problem("link", "link %q: %s and %s do not talk to each other directly (links: etcd<->etcd, lockserver<->etcd, balancer<->lockserver, client<->balancer, balancer<->balancer)",
			c.st.Link, from.Kind, to.Kind)
	}
}
