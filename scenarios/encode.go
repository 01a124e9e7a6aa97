package scenarios

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/locksim/locksim/faults"
	"gopkg.in/yaml.v3"
)

// Encode writes s as a scenario file that Parse reads back into the same
// Scenario (its steps' Source aside, which names the lines of the new file).
// Keys whose value is the default are left out, so that a scenario built by
// hand (for example the web page's recorded clicks) stays short; name,
// duration and steps are always written, each step on one line.
func Encode(s *Scenario) []byte {
	root := mapping(0)
	root.add("name", str(s.Name))
	if s.Description != "" {
		root.add("description", str(s.Description))
	}
	if s.Seed != DefaultSeed {
		root.add("seed", integer(s.Seed))
	}
	root.add("duration", duration(s.Duration))
	encodeSetup(root, s)
	if len(s.Variants) > 0 {
		root.add("variants", encodeVariants(s.Variants))
	}
	steps := &yaml.Node{Kind: yaml.SequenceNode}
	for _, st := range s.Steps {
		steps.Content = append(steps.Content, encodeStep(st))
	}
	if len(s.Steps) == 0 {
		steps.Style = yaml.FlowStyle
	}
	root.add("steps", steps)
	if n := s.Nemesis; n != nil {
		nm := mapping(yaml.FlowStyle)
		nm.add("every", duration(n.Every))
		nm.add("faults", strs(n.Faults))
		nm.addIf(n.For != n.Every/2, "for", duration(n.For))
		root.add("nemesis", nm.Node)
	}
	if s.Final != "" {
		root.add("final", str(s.Final))
	}
	encodeExpect(root, s)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	_ = enc.Encode(root.Node) // a tree of strings cannot fail to encode
	_ = enc.Close()
	return b.Bytes()
}

// encodeSetup writes the sandbox the scenario runs in: topology, lock,
// workload, fencing, lockServers, raft, vrrp (each only where it differs
// from the default).
func encodeSetup(root mapNode, s *Scenario) {
	top := mapping(yaml.FlowStyle)
	top.addIf(s.Topology.Etcd != DefaultEtcd, "etcd", integer(s.Topology.Etcd))
	top.addIf(s.Topology.LockServers != DefaultLockServers, "lockServers", integer(s.Topology.LockServers))
	top.addIf(s.Topology.Clients != DefaultClients, "clients", integer(s.Topology.Clients))
	top.addIf(s.Topology.Balancers != DefaultBalancers, "balancers", integer(s.Topology.Balancers))
	top.addIf(s.Topology.Balancer != DefaultBalancer, "balancer", str(s.Topology.Balancer))
	root.addMap("topology", top)
	lock := mapping(yaml.FlowStyle)
	lock.addIf(s.Lock.TTL != DefaultTTL, "ttl", duration(s.Lock.TTL))
	lock.addIf(s.Lock.Wait != DefaultWait, "wait", duration(s.Lock.Wait))
	root.addMap("lock", lock)
	work := mapping(yaml.FlowStyle)
	work.addIf(!slices.Equal(s.Workload.Resources, []string{DefaultResource}), "resources", strs(s.Workload.Resources))
	work.addIf(s.Workload.Hold != DefaultHold, "hold", duration(s.Workload.Hold))
	work.addIf(s.Workload.Think != DefaultThink, "think", duration(s.Workload.Think))
	work.addIf(s.Workload.Cycles != 0, "cycles", integer(s.Workload.Cycles))
	root.addMap("workload", work)
	if !s.Fencing {
		root.add("fencing", boolean(false))
	}
	ls := mapping(yaml.FlowStyle)
	ls.addIf(s.LockServers.Unsafe != "", "unsafe", str(s.LockServers.Unsafe))
	ls.addIf(s.LockServers.Auth, "auth", boolean(true))
	ls.addIf(s.LockServers.Command != "", "command", str(s.LockServers.Command))
	root.addMap("lockServers", ls)
	raft := mapping(yaml.FlowStyle)
	raft.addIf(s.Raft.TickMs != DefaultTickMs, "tickMs", integer(s.Raft.TickMs))
	raft.addIf(s.Raft.ElectionMs != DefaultElectionMs, "electionMs", integer(s.Raft.ElectionMs))
	root.addMap("raft", raft)
	vrrp := mapping(yaml.FlowStyle)
	vrrp.addIf(s.VRRP.AdvertInterval != 0, "advertInterval", duration(s.VRRP.AdvertInterval))
	vrrp.addIf(s.VRRP.NoPreempt, "preempt", boolean(false))
	root.addMap("vrrp", vrrp)
}

func encodeVariants(variants []Variant) *yaml.Node {
	vs := mapping(0)
	for _, v := range variants {
		vm := mapping(yaml.FlowStyle)
		if v.Fencing != nil {
			vm.add("fencing", boolean(*v.Fencing))
		}
		if v.Unsafe != nil {
			u := mapping(yaml.FlowStyle)
			if *v.Unsafe == "" {
				u.add("unsafe", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"})
			} else {
				u.add("unsafe", str(*v.Unsafe))
			}
			vm.add("lockServers", u.Node)
		}
		if v.Preempt != nil {
			p := mapping(yaml.FlowStyle)
			p.add("preempt", boolean(*v.Preempt))
			vm.add("vrrp", p.Node)
		}
		vs.add(v.Name, vm.Node)
	}
	return vs.Node
}

// encodeExpect writes expect: flat without variants, keyed by variant with.
func encodeExpect(root mapNode, s *Scenario) {
	if len(s.Variants) == 0 {
		if e, ok := s.Expect[DefaultVariant]; ok {
			root.addMap("expect", expectation(e))
		}
		return
	}
	ex := mapping(0)
	for _, name := range s.VariantNames() {
		if e, ok := s.Expect[name]; ok {
			ex.add(name, expectation(e).Node)
		}
	}
	root.addMap("expect", ex)
}

// encodeStep writes one step as a flow mapping, its keys in the documented order.
func encodeStep(st faults.Step) *yaml.Node {
	m := mapping(yaml.FlowStyle)
	m.add("at", duration(st.At))
	if w := st.When; w != nil {
		wm := mapping(yaml.FlowStyle)
		wm.add("holder", str(w.Holder))
		wm.add("phase", str(w.Phase))
		wm.addIf(w.Timeout != 0, "timeout", duration(w.Timeout))
		m.add("when", wm.Node)
	}
	m.add("fault", str(st.Fault))
	m.addIf(st.Target != "", "target", str(st.Target))
	m.addIf(st.Isolate != "", "isolate", str(st.Isolate))
	if len(st.Groups) > 0 {
		gs := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, g := range st.Groups {
			gs.Content = append(gs.Content, strs(g))
		}
		m.add("groups", gs)
	}
	m.addIf(st.Bridge != "", "bridge", str(st.Bridge))
	m.addIf(st.From != "", "from", str(st.From))
	m.addIf(st.To != "", "to", str(st.To))
	m.addIf(st.Link != "", "link", str(st.Link))
	m.addIf(st.Latency != 0, "latency", duration(st.Latency))
	m.addIf(st.Jitter != 0, "jitter", duration(st.Jitter))
	m.addIf(st.For != 0, "for", duration(st.For))
	m.addIf(st.RestartAfter != 0, "restartAfter", duration(st.RestartAfter))
	m.addIf(st.Skew != 0, "skew", duration(st.Skew))
	m.addIf(st.Note != "", "note", str(st.Note))
	return m.Node
}

func expectation(e Expect) mapNode {
	m := mapping(yaml.FlowStyle)
	m.addIf(e.Lock != "", "lock", str(e.Lock))
	m.addIf(e.Resource != "", "resource", str(e.Resource))
	if e.MaxUnknown != nil {
		m.add("maxUnknown", integer(*e.MaxUnknown))
	}
	return m
}

// mapNode builds a YAML mapping in insertion order.
type mapNode struct{ *yaml.Node }

func mapping(style yaml.Style) mapNode {
	return mapNode{&yaml.Node{Kind: yaml.MappingNode, Style: style}}
}

func (m mapNode) add(key string, v *yaml.Node) {
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

func (m mapNode) addIf(cond bool, key string, v *yaml.Node) {
	if cond {
		m.add(key, v)
	}
}

// addMap adds a non-empty mapping.
func (m mapNode) addMap(key string, v mapNode) {
	if len(v.Content) > 0 {
		m.add(key, v.Node)
	}
}

// str writes a string, quoted when a YAML 1.1 reader would take it for a
// boolean or null ("yes", "off", "~").
func str(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	switch strings.ToLower(s) {
	case "y", "yes", "n", "no", "on", "off", "true", "false", "null", "~":
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

func strs(list []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, s := range list {
		n.Content = append(n.Content, str(s))
	}
	return n
}

func integer[T int | int64](v T) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(int64(v), 10)}
}

func boolean(v bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}
}

// duration writes d as Go writes it ("1.5s", "2m0s", "-3s"), which the
// parser reads back exactly.
func duration(d time.Duration) *yaml.Node { return str(d.String()) }
