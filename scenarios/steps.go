package scenarios

import (
	"fmt"
	"slices"
)

// stepCheck validates one step.
type stepCheck struct {
	v    *validator
	st   *Step
	path string
}

func (c stepCheck) problem(field, format string, args ...any) {
	line := 0
	if field != "" {
		line = c.v.s.pos[c.path+"."+field]
	}
	if line == 0 {
		line = c.st.Line
	}
	c.v.add(line, format, args...)
}

func (v *validator) step(i int, st *Step) {
	c := stepCheck{v: v, st: st, path: fmt.Sprintf("steps[%d]", i)}
	s := v.s
	if st.At < 0 {
		c.problem("at", "at must not be negative, got %s", st.At)
	}
	if st.At > s.Duration {
		c.problem("at", "at %s is beyond the end of the run (duration %s)", st.At, s.Duration)
	}
	if st.When != nil {
		c.when(st.When)
	}
	for _, d := range []struct {
		field string
		value int64
	}{{"for", int64(st.For)}, {"restartAfter", int64(st.RestartAfter)}, {"latency", int64(st.Latency)}, {"jitter", int64(st.Jitter)}} {
		if d.value < 0 {
			c.problem(d.field, "%s must not be negative", d.field)
		}
	}
	takes, known := faultKeys[st.Fault]
	if !known {
		c.problem("fault", "unknown fault %q (%s)", st.Fault, suggest(st.Fault, Faults))
		return
	}
	c.unused(takes)
	switch st.Fault {
	case FaultCrash:
		c.target("target", st.Target, ruleCrash)
	case FaultRestart:
		c.target("target", st.Target, ruleRestart)
	case FaultPause:
		c.target("target", st.Target, rulePause)
	case FaultResume:
		c.target("target", st.Target, ruleResume)
	case FaultPartition:
		c.partition()
	case FaultDelay:
		c.delay()
	case FaultClockSkew:
		c.target("target", st.Target, ruleClockSkew)
		if st.Skew == 0 {
			c.problem("skew", "clock-skew needs a non-zero skew (e.g. skew: -3s: the client's clock runs 3 s behind)")
		}
	}
}

// unused rejects fields set for a fault that does not take them.
func (c stepCheck) unused(takes []string) {
	st := c.st
	set := map[string]bool{
		"target": st.Target != "", "isolate": st.Isolate != "", "groups": len(st.Groups) > 0, "bridge": st.Bridge != "",
		"from": st.From != "", "to": st.To != "", "link": st.Link != "", "latency": st.Latency != 0, "jitter": st.Jitter != 0,
		"for": st.For != 0, "restartAfter": st.RestartAfter != 0, "skew": st.Skew != 0,
	}
	for _, k := range stepKeys {
		if set[k] && !slices.Contains(takes, k) {
			c.problem(k, "%s does not take %q (%s)", st.Fault, k, takesText(takes))
		}
	}
}

func (c stepCheck) when(w *When) {
	if w.Holder == "" {
		c.problem("when", "when needs holder: client-N (the client whose lock cycle is watched)")
	} else {
		c.target("when.holder", w.Holder, ruleHolder)
	}
	if !slices.Contains(Phases, w.Phase) {
		if w.Phase == "" {
			c.problem("when", "when needs phase (%s)", oneOf(Phases))
		} else {
			c.problem("when.phase", "unknown phase %q (%s)", w.Phase, suggest(w.Phase, Phases))
		}
	}
	if w.Timeout < 0 {
		c.problem("when.timeout", "when.timeout must not be negative")
	}
}

// target checks that a target is well formed, allowed here, and exists.
// It returns the parsed target and whether it is valid.
func (c stepCheck) target(field, s string, rule targetRule) (Target, bool) {
	if s == "" {
		c.problem(field, "%s needs %s (%s)", c.st.Fault, field, rule)
		return Target{}, false
	}
	t, err := ParseTarget(s)
	if err != nil {
		c.problem(field, "%s: unknown target %q (want %s)", field, s, rule)
		return Target{}, false
	}
	if !rule.allows(t) {
		c.problem(field, "%s: %s cannot be %q here (want %s)", c.st.Fault, field, s, rule)
		return Target{}, false
	}
	if !c.exists(field, t) {
		return Target{}, false
	}
	return t, true
}

// exists checks a named target against the topology.
func (c stepCheck) exists(field string, t Target) bool {
	if t.Index == 0 {
		return true
	}
	top := c.v.s.Topology
	count := map[string]int{KindEtcd: top.Etcd, KindLockServer: top.LockServers, KindClient: top.Clients}[t.Kind]
	if t.Index > count {
		c.problem(field, "%s: %q does not exist (the topology has %s-1..%s-%d)", field, t.Name, t.Kind, t.Kind, count)
		return false
	}
	return true
}

func (c stepCheck) partition() {
	st := c.st
	forms := 0
	for _, set := range []bool{st.Isolate != "", len(st.Groups) > 0, st.Bridge != "", st.From != "" || st.To != ""} {
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
	case len(st.Groups) > 0:
		c.groups()
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
		case from.Kind == KindLockServer && to.Kind == KindLockServer:
			c.problem("to", "lock servers do not talk to each other: one side of from/to must be an etcd member")
		}
	}
}

func (c stepCheck) groups() {
	groups := c.st.Groups
	if len(groups) < 2 {
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

func (c stepCheck) delay() {
	st := c.st
	if st.Link == "" {
		c.problem("", "delay needs link (\"a->b\" or \"a<->b\", e.g. etcd-1<->etcd-2)")
	} else if l, err := ParseLink(st.Link); err != nil {
		c.problem("link", "link %q: want \"a->b\" or \"a<->b\" between named components, e.g. etcd-1<->etcd-2 or lockserver-1->etcd-3", st.Link)
	} else if c.exists("link", l.From) && c.exists("link", l.To) {
		switch {
		case l.From.Name == l.To.Name:
			c.problem("link", "link %q joins %s to itself", st.Link, l.From.Name)
		case !connected(l.From.Kind, l.To.Kind):
			c.problem("link", "link %q: %s and %s do not talk to each other directly (links: etcd<->etcd, lockserver<->etcd, balancer<->lockserver, client<->balancer)",
				st.Link, l.From.Kind, l.To.Kind)
		}
	}
	if st.Latency <= 0 {
		c.problem("latency", "delay needs latency > 0 (e.g. latency: 50ms)")
	}
}
