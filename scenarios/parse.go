package scenarios

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/locksim/locksim/faults"
	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds a scenario file.
const MaxFileSize = 1 << 20

var (
	topKeys         = []string{"name", "description", "seed", "duration", "topology", "lock", "workload", "fencing", "lockServers", "raft", "vrrp", "variants", "steps", "nemesis", "final", "expect"}
	topologyKeys    = []string{"etcd", "lockServers", "clients", "balancers", "balancer"}
	lockKeys        = []string{"ttl", "wait"}
	workloadKeys    = []string{"resources", "hold", "think", "cycles"}
	lockServersKeys = []string{"unsafe", "auth", "command"}
	raftKeys        = []string{"tickMs", "electionMs"}
	vrrpKeys        = []string{"advertInterval", "preempt"}
	variantKeys     = []string{"fencing", "lockServers", "vrrp"}
	variantLSKeys   = []string{"unsafe"}
	variantVRRPKeys = []string{"preempt"}
	expectKeys      = []string{"lock", "resource", "maxUnknown"}
	whenKeys        = []string{"holder", "phase", "timeout"}
	nemesisKeys     = []string{"every", "faults", "for"}
	stepCommonKeys  = []string{"at", "when", "fault", "note"}
	stepKeys        = append(slices.Clone(stepCommonKeys), faults.StepFields...)
)

// ParseFile reads and parses one scenario file. Problems are reported as
// "path:line: problem".
func ParseFile(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenarios: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and validates one scenario. name is the file name used in
// messages and as the default scenario name. The error, if any, is an
// ErrorList wrapping ErrInvalid.
func Parse(name string, data []byte) (*Scenario, error) {
	p := &problems{file: name}
	if len(data) > MaxFileSize {
		p.add(0, "file is larger than %d bytes", MaxFileSize)
		return nil, p.err()
	}
	root := document(p, data)
	if root == nil {
		return nil, p.err()
	}
	d := &decoder{problems: p, pos: map[string]int{}}
	s := d.scenario(root, name)
	if err := p.err(); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document returns the single document's content node, or nil after
// recording why there is none.
func document(p *problems, data []byte) (root *yaml.Node) {
	defer func() {
		if r := recover(); r != nil { // yaml.v3 must not take the program down
			p.add(0, "invalid YAML: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add(1, "empty scenario file (want keys such as name, duration, topology, steps)")
		} else {
			yamlProblem(p, err, data)
		}
		return nil
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		p.add(max(doc.Line, 1), "empty scenario file (want keys such as name, duration, topology, steps)")
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		yamlProblem(p, err, data)
		return nil
	default:
		p.add(next.Line, "a second YAML document (one scenario per file; remove the \"---\")")
		return nil
	}
	return doc.Content[0]
}

// parserProblems are yaml.v3 parser (not scanner) messages. yaml.v3
// reports their line 0-based, scanner errors 1-based.
var parserProblems = []string{
	"did not find expected <document start>", "found duplicate %YAML directive", "found incompatible YAML document",
	"found duplicate %TAG directive", "found undefined tag handle", "did not find expected node content",
	"did not find expected key", "did not find expected '-' indicator", "did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
}

var unknownAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)

func yamlProblem(p *problems, err error, data []byte) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if slices.Contains(parserProblems, m[2]) {
			line++
		}
		p.add(line, "invalid YAML: %s", m[2])
		return
	}
	problem := strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if slices.Contains(parserProblems, problem) {
		line = 1
	}
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		for i, l := range strings.Split(string(data), "\n") {
			if strings.Contains(l, "*"+m[1]) {
				line = i + 1
				break
			}
		}
		problem = fmt.Sprintf("alias *%s refers to an anchor &%s that is not defined above it", m[1], m[1])
	}
	p.add(line, "invalid YAML: %s", problem)
}

// scenario decodes the top level, filling defaults for absent keys. It is
// long because it has one case per top-level key.
func (d *decoder) scenario(root *yaml.Node, file string) *Scenario {
	base := filepath.Base(file)
	s := &Scenario{
		Path:     file,
		Name:     strings.TrimSuffix(strings.TrimSuffix(base, ".yaml"), ".yml"),
		Seed:     DefaultSeed,
		Duration: DefaultDuration,
		Topology: Topology{Etcd: DefaultEtcd, LockServers: DefaultLockServers, Clients: DefaultClients, Balancers: DefaultBalancers, Balancer: DefaultBalancer},
		Lock:     Lock{TTL: DefaultTTL, Wait: DefaultWait},
		Workload: Workload{Resources: []string{DefaultResource}, Hold: DefaultHold, Think: DefaultThink},
		Fencing:  true,
		Raft:     Raft{TickMs: DefaultTickMs, ElectionMs: DefaultElectionMs},
		Expect:   map[string]Expect{},
		pos:      d.pos,
	}
	fields, _ := d.mapping(root, "", topKeys, "")
	var expectNode *yaml.Node
	for _, f := range fields {
		switch f.key {
		case "name":
			s.Name, _ = d.str(f.value, "name")
		case "description":
			s.Description, _ = d.str(f.value, "description")
		case "seed":
			s.Seed, _ = d.integer(f.value, "seed")
		case "duration":
			s.Duration, _ = d.duration(f.value, "duration", false)
		case "topology":
			d.topology(f.value, &s.Topology)
		case "lock":
			for _, g := range d.fields(f.value, "lock", lockKeys) {
				switch g.key {
				case "ttl":
					s.Lock.TTL, _ = d.duration(g.value, "lock.ttl", false)
				case "wait":
					s.Lock.Wait, _ = d.duration(g.value, "lock.wait", false)
				}
			}
		case "workload":
			d.workload(f.value, &s.Workload)
		case "fencing":
			s.Fencing, _ = d.boolean(f.value, "fencing")
		case "lockServers":
			for _, g := range d.fields(f.value, "lockServers", lockServersKeys) {
				switch g.key {
				case "unsafe":
					s.LockServers.Unsafe, _ = d.str(g.value, "lockServers.unsafe")
				case "auth":
					s.LockServers.Auth, _ = d.boolean(g.value, "lockServers.auth")
				case "command":
					s.LockServers.Command, _ = d.str(g.value, "lockServers.command")
				}
			}
		case "raft":
			for _, g := range d.fields(f.value, "raft", raftKeys) {
				switch g.key {
				case "tickMs":
					s.Raft.TickMs, _ = d.smallInt(g.value, "raft.tickMs")
				case "electionMs":
					s.Raft.ElectionMs, _ = d.smallInt(g.value, "raft.electionMs")
				}
			}
		case "vrrp":
			for _, g := range d.fields(f.value, "vrrp", vrrpKeys) {
				switch g.key {
				case "advertInterval":
					s.VRRP.AdvertInterval, _ = d.duration(g.value, "vrrp.advertInterval", false)
				case "preempt":
					preempt, _ := d.boolean(g.value, "vrrp.preempt")
					s.VRRP.NoPreempt = !preempt
				}
			}
		case "variants":
			s.Variants = d.variants(f.value)
		case "steps":
			s.Steps = d.steps(f.value, base)
		case "nemesis":
			s.Nemesis = d.nemesis(f.value)
		case "final":
			s.Final, _ = d.str(f.value, "final")
		case "expect":
			expectNode = f.value
		}
	}
	if expectNode != nil {
		d.expect(expectNode, s)
	}
	if s.Nemesis != nil {
		s.Nemesis.Members, s.Nemesis.LockServers, s.Nemesis.Clients = s.Topology.Etcd, s.Topology.LockServers, s.Topology.Clients
	}
	return s
}

// fields is mapping without the ok flag.
func (d *decoder) fields(n *yaml.Node, path string, allowed []string) []field {
	f, _ := d.mapping(n, path, allowed, "")
	return f
}

func (d *decoder) topology(n *yaml.Node, t *Topology) {
	for _, g := range d.fields(n, "topology", topologyKeys) {
		path := "topology." + g.key
		switch g.key {
		case "etcd":
			t.Etcd, _ = d.smallInt(g.value, path)
		case "lockServers":
			t.LockServers, _ = d.smallInt(g.value, path)
		case "clients":
			t.Clients, _ = d.smallInt(g.value, path)
		case "balancers":
			t.Balancers, _ = d.smallInt(g.value, path)
		case "balancer":
			t.Balancer, _ = d.str(g.value, path)
		}
	}
}

func (d *decoder) workload(n *yaml.Node, w *Workload) {
	for _, g := range d.fields(n, "workload", workloadKeys) {
		path := "workload." + g.key
		switch g.key {
		case "resources":
			w.Resources, _ = d.strList(g.value, path, MaxResources)
		case "hold":
			w.Hold, _ = d.duration(g.value, path, false)
		case "think":
			w.Think, _ = d.duration(g.value, path, false)
		case "cycles":
			w.Cycles, _ = d.smallInt(g.value, path)
		}
	}
}

func (d *decoder) variants(n *yaml.Node) []Variant {
	fields := d.fields(n, "variants", nil)
	out := make([]Variant, 0, len(fields))
	for _, f := range fields {
		v := Variant{Name: f.key}
		path := "variants." + f.key
		for _, g := range d.fields(f.value, path, variantKeys) {
			switch g.key {
			case "fencing":
				if b, ok := d.boolean(g.value, path+".fencing"); ok {
					v.Fencing = &b
				}
			case "lockServers":
				for _, h := range d.fields(g.value, path+".lockServers", variantLSKeys) {
					// Null switches the teaching-only mode off.
					if isNull(resolve(h.value)) {
						v.Unsafe = new(string)
						continue
					}
					if s, ok := d.str(h.value, path+".lockServers.unsafe"); ok {
						v.Unsafe = &s
					}
				}
			case "vrrp":
				for _, h := range d.fields(g.value, path+".vrrp", variantVRRPKeys) {
					if b, ok := d.boolean(h.value, path+".vrrp.preempt"); ok {
						v.Preempt = &b
					}
				}
			}
		}
		out = append(out, v)
	}
	return out
}

func (d *decoder) expect(n *yaml.Node, s *Scenario) {
	if len(s.Variants) == 0 {
		hint := "the file has no variants, so expect holds lock, resource and maxUnknown directly"
		f, _ := d.mapping(n, "expect", expectKeys, hint)
		s.Expect[DefaultVariant] = d.expectation(f, "expect")
		return
	}
	for _, f := range d.fields(n, "expect", nil) {
		if slices.Contains(expectKeys, f.key) && !slices.Contains(s.VariantNames(), f.key) {
			d.add(f.line, "expect: the file has variants, so expect is keyed by variant (%s), as in \"%s: {lock: linearizable}\"",
				strings.Join(s.VariantNames(), ", "), s.Variants[0].Name)
			continue
		}
		path := "expect." + f.key
		g, _ := d.mapping(f.value, path, expectKeys, "")
		s.Expect[f.key] = d.expectation(g, path)
	}
}

func (d *decoder) expectation(fields []field, path string) Expect {
	var e Expect
	for _, f := range fields {
		p := join(path, f.key)
		switch f.key {
		case "lock":
			e.Lock, _ = d.str(f.value, p)
		case "resource":
			e.Resource, _ = d.str(f.value, p)
		case "maxUnknown":
			if v, ok := d.smallInt(f.value, p); ok {
				e.MaxUnknown = &v
			}
		}
	}
	return e
}

func (d *decoder) nemesis(n *yaml.Node) *faults.NemesisSpec {
	nm := &faults.NemesisSpec{}
	for _, g := range d.fields(n, "nemesis", nemesisKeys) {
		path := "nemesis." + g.key
		switch g.key {
		case "every":
			nm.Every, _ = d.duration(g.value, path, false)
		case "faults":
			nm.Faults, _ = d.strList(g.value, path, 2*len(faults.NemesisFaults))
		case "for":
			nm.For, _ = d.duration(g.value, path, false)
		}
	}
	if _, ok := d.pos["nemesis.for"]; !ok {
		nm.For = nm.Every / 2
	}
	return nm
}

func (d *decoder) steps(n *yaml.Node, file string) []faults.Step {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.add(n.Line, "steps: want a list of steps (each starting with \"- at: ...\"), got %s", describe(n))
		return nil
	}
	if len(n.Content) > MaxSteps {
		d.add(n.Line, "steps: at most %d steps, got %d", MaxSteps, len(n.Content))
		return nil
	}
	out := make([]faults.Step, 0, len(n.Content))
	for i, item := range n.Content {
		st := d.step(item, fmt.Sprintf("steps[%d]", i))
		st.Source = fmt.Sprintf("step %d (%s:%d)", i+1, file, resolve(item).Line)
		out = append(out, st)
	}
	return out
}

func (d *decoder) step(n *yaml.Node, path string) faults.Step {
	n = resolve(n)
	var st faults.Step
	d.pos[path] = n.Line
	fields, _ := d.mapping(n, path, stepKeys, "")
	if n.Kind != yaml.MappingNode {
		return st
	}
	has := map[string]bool{}
	for _, f := range fields {
		has[f.key] = true
		p := join(path, f.key)
		switch f.key {
		case "at":
			st.At, _ = d.duration(f.value, "at", false)
		case "when":
			st.When = d.when(f.value, p)
		case "fault":
			st.Fault, _ = d.str(f.value, "fault")
		case "target":
			st.Target, _ = d.str(f.value, "target")
		case "isolate":
			st.Isolate, _ = d.str(f.value, "isolate")
		case "groups":
			st.Groups = d.groups(f.value)
		case "bridge":
			st.Bridge, _ = d.str(f.value, "bridge")
		case "from":
			st.From, _ = d.str(f.value, "from")
		case "to":
			st.To, _ = d.str(f.value, "to")
		case "link":
			st.Link, _ = d.str(f.value, "link")
		case "latency":
			st.Latency, _ = d.duration(f.value, "latency", false)
		case "jitter":
			st.Jitter, _ = d.duration(f.value, "jitter", false)
		case "for":
			st.For, _ = d.duration(f.value, "for", false)
		case "restartAfter":
			st.RestartAfter, _ = d.duration(f.value, "restartAfter", false)
		case "skew":
			st.Skew, _ = d.duration(f.value, "skew", true)
		case "note":
			st.Note, _ = d.str(f.value, "note")
		}
	}
	if !has["at"] {
		d.add(n.Line, "step has no \"at\" (when it fires, e.g. at: 3s)")
	}
	if !has["fault"] {
		d.add(n.Line, "step has no \"fault\" (%s)", oneOf(faults.Faults))
		return st
	}
	takes, known := faults.Takes[st.Fault]
	if !known {
		return st // Validate names the unknown fault
	}
	for _, f := range fields {
		if !slices.Contains(stepCommonKeys, f.key) && !slices.Contains(takes, f.key) {
			d.add(f.line, "%s does not take %q (%s)", st.Fault, f.key, faults.TakesText(takes))
		}
	}
	return st
}

func (d *decoder) when(n *yaml.Node, path string) *faults.Condition {
	w := &faults.Condition{}
	for _, g := range d.fields(n, "when", whenKeys) {
		p := "when." + g.key
		switch g.key {
		case "holder":
			w.Holder, _ = d.str(g.value, p)
		case "phase":
			w.Phase, _ = d.str(g.value, p)
		case "timeout":
			w.Timeout, _ = d.duration(g.value, p, false)
		}
		d.pos[join(path, g.key)] = g.line
	}
	return w
}

func (d *decoder) groups(n *yaml.Node) [][]string {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.add(n.Line, "groups: want a list of lists, e.g. [[etcd-1], [etcd-2, etcd-3]], got %s", describe(n))
		return nil
	}
	const maxGroups = 32
	if len(n.Content) > maxGroups {
		d.add(n.Line, "groups: at most %d groups, got %d", maxGroups, len(n.Content))
		return nil
	}
	out := make([][]string, 0, len(n.Content))
	for i, g := range n.Content {
		list, _ := d.strList(g, fmt.Sprintf("groups[%d]", i), maxGroups)
		out = append(out, list)
	}
	return out
}
