package scenarios

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// step wraps one step (given as the lines after "- ") in a valid scenario
// whose step starts on line 3.
func step(lines ...string) string {
	return "duration: 10s\nsteps:\n  - " + strings.Join(lines, "\n    ") + "\n"
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantLine int
		want     string // substring of the first problem
	}{
		// file structure
		{"empty file", "", 1, "empty scenario file"},
		{"only comments", "# nothing here\n\n", 1, "empty scenario file"},
		{"two documents", "name: a\n---\nname: b\n", 2, "a second YAML document (one scenario per file"},
		{"unclosed flow mapping", "name: a\ntopology: {etcd: 3\n", 2, "invalid YAML: did not find expected ',' or '}'"},
		{"list item in a mapping", "name: a\nseed: 1\n- b\n", 3, "invalid YAML: did not find expected key"},
		{"mapping in a value", "name: a\nseed: b: c\n", 2, "invalid YAML: mapping values are not allowed in this context"},
		{"unterminated string", "name: a\ndescription: \"abc\n", 2, "invalid YAML"},
		{"unknown alias", "name: a\ndescription: *d\n", 2, "invalid YAML: alias *d refers to an anchor &d that is not defined"},
		{"tab indentation", "topology:\n\tetcd: 3\n", 2, "invalid YAML"},
		{"top level is a list", "- name: a\n", 1, "want a mapping (key: value), got a list"},
		{"top level is a scalar", "hello\n", 1, `want a mapping (key: value), got "hello"`},

		// unknown keys at every level
		{"typo at top level", "name: a\nfencng: false\n", 2, `unknown key "fencng" in the scenario (did you mean "fencing"?)`},
		{"unknown top-level key", "name: a\nclusters: 3\n", 2, `unknown key "clusters" in the scenario (want one of name,`},
		{"typo in topology", "topology:\n  etcd: 3\n  clinets: 3\n", 3, `unknown key "clinets" in topology (did you mean "clients"?)`},
		{"typo in lock", "lock: {tll: 2s}\n", 1, `unknown key "tll" in lock (did you mean "ttl"?)`},
		{"typo in workload", "workload:\n  resource: [a]\n", 2, `unknown key "resource" in workload (did you mean "resources"?)`},
		{"typo in lockServers", "lockServers: {unsafe: check-then-set, auht: true}\n", 1, `unknown key "auht" in lockServers (did you mean "auth"?)`},
		{"typo in raft", "raft:\n  tickms: 10\n", 2, `unknown key "tickms" in raft (did you mean "tickMs"?)`},
		{"typo in a step", step("at: 1s", "fault: crash", "traget: etcd-1"), 5, `unknown key "traget" in steps[0] (did you mean "target"?)`},
		{"typo in when", step("at: 1s", "when: {holder: client-1, phsae: acquired}", "fault: pause", "target: client-1"), 4, `unknown key "phsae" in when (did you mean "phase"?)`},
		{"typo in a variant", "variants:\n  unfenced: {fenceing: false}\n", 2, `unknown key "fenceing" in variants.unfenced (did you mean "fencing"?)`},
		{"typo in nemesis", "nemesis:\n  every: 2s\n  fualts: [crash-member]\n", 3, `unknown key "fualts" in nemesis (did you mean "faults"?)`},
		{"typo in expect", "expect: {lock: linearizable, resorce: linearizable}\n", 1, `unknown key "resorce" in expect (did you mean "resource"?)`},
		{"duplicate key", "name: a\nseed: 1\nname: b\n", 3, `duplicate key "name" in the scenario (first on line 1)`},
		{"duplicate step key", step("at: 1s", "fault: heal", "at: 2s"), 5, `duplicate key "at" in steps[0] (first on line 3)`},

		// wrong types
		{"count is a word", "topology:\n  clients: three\n", 2, `topology.clients: want a whole number, got "three"`},
		{"count is a fraction", "topology: {clients: 2.5}\n", 1, `topology.clients: want a whole number, got "2.5"`},
		{"seed is a fraction", "seed: 1.5\n", 1, `seed: want a whole number, got "1.5"`},
		{"bool is yes", "fencing: yes\n", 1, `fencing: want true or false, got "yes"`},
		{"string is a list", "name: [a, b]\n", 1, "name: want a string, got a list"},
		{"steps is a mapping", "steps:\n  at: 1s\n", 2, "steps: want a list of steps"},
		{"resources is a string", "workload:\n  resources: order:1\n", 2, `workload.resources: want a list like [a, b], got "order:1"`},
		{"duration with spelled unit", "duration: 10 seconds\n", 1, `duration: want a duration like "300ms" or "2s", or a number of seconds, got "10 seconds" (units are`},
		{"duration is a word", "lock: {ttl: long}\n", 1, `lock.ttl: want a duration like "300ms"`},
		{"duration is empty", "duration:\n", 1, "duration: want a duration like"},
		{"duration too long", "duration: 100000h\n", 1, "too long (at most 24h0m0s)"},
		{"groups is not a list of lists", step("at: 1s", "fault: partition", "groups: etcd-1"), 5, "groups: want a list of lists"},

		// negative values
		{"negative wait", "lock: {wait: -1s}\n", 1, "lock.wait: must not be negative, got -1s"},
		{"negative hold", "workload: {hold: -0.5}\n", 1, "workload.hold: must not be negative"},
		{"negative cycles", "workload: {cycles: -1}\n", 1, "workload.cycles must not be negative, got -1"},
		{"negative at", step("at: -1s", "fault: heal"), 3, "at: must not be negative"},
		{"negative for", step("at: 1s", "fault: pause", "target: client-1", "for: -2s"), 6, "for: must not be negative"},
		{"negative restartAfter", step("at: 1s", "fault: crash", "target: etcd-1", "restartAfter: -1"), 6, "restartAfter: must not be negative"},
		{"negative maxUnknown", "expect: {maxUnknown: -1}\n", 1, "expect maxUnknown must not be negative, got -1"},

		// ranges
		{"etcd is not 3", "topology: {etcd: 5}\n", 1, "topology.etcd must be 3: the sandbox always runs exactly 3 etcd members, got 5"},
		{"no lock servers", "topology: {lockServers: 0}\n", 1, "topology.lockServers must be between 1 and 16, got 0"},
		{"too many lock servers", "topology: {lockServers: 17}\n", 1, "topology.lockServers must be between 1 and 16, got 17"},
		{"no clients", "topology: {clients: 0}\n", 1, "topology.clients must be between 1 and 64, got 0"},
		{"too many clients", "topology: {clients: 65}\n", 1, "topology.clients must be between 1 and 64, got 65"},
		{"unknown balancer", "topology: {balancer: round-robbin}\n", 1, `unknown balancer "round-robbin" (did you mean "round-robin"?)`},
		{"ttl below 1s", "lock:\n  ttl: 500ms\n", 2, "lock.ttl must be between 1s and 1h0m0s (etcd leases count whole seconds), got 500ms"},
		{"wait above 300s", "lock: {wait: 301s}\n", 1, "lock.wait must be between 0s and 5m0s, got 5m1s"},
		{"zero duration", "duration: 0s\n", 1, "duration must be between 1s and 24h0m0s, got 0s"},
		{"empty name", "name: \"\"\n", 1, "name is empty"},
		{"bad resource id", "workload:\n  resources: [\"order 1\"]\n", 2, `resource id "order 1" must be 1-256 characters`},
		{"duplicate resource", "workload:\n  resources: [a, a]\n", 2, `resource "a" is listed twice`},
		{"no resources", "workload: {resources: []}\n", 1, "workload.resources needs 1 to 64 resource ids, got 0"},
		{"raft election too short", "raft: {tickMs: 20, electionMs: 50}\n", 1, "raft.electionMs must be at least 5 times tickMs (100)"},
		{"raft tick zero", "raft: {tickMs: 0}\n", 1, "raft.tickMs must be between 1 and 1000, got 0"},
		{"too many balancers", "topology: {balancers: 9}\n", 1, "topology.balancers must be between 1 and 8, got 9"},
		{"vrrp with one balancer", "vrrp: {preempt: false}\n", 1, "vrrp needs topology.balancers of 2 or more"},
		{"vrrp interval too short", "topology: {balancers: 2}\nvrrp: {advertInterval: 1ms}\n", 2, "vrrp.advertInterval must be between 10ms and 10s, got 1ms"},
		{"unknown vrrp key", "topology: {balancers: 2}\nvrrp: {nopreempt: true}\n", 2, `unknown key "nopreempt"`},
		{"variant vrrp with one balancer", "variants: {a: {vrrp: {preempt: false}}}\n", 1, `variant "a" sets vrrp, which needs topology.balancers of 2 or more`},
		{"unknown unsafe mode", "lockServers: {unsafe: check-and-set}\n", 1, `unknown unsafe mode "check-and-set" (want check-then-set`},
		{"command without listen", "lockServers:\n  command: python3 server.py --etcd {etcd}\n", 2, `lockServers.command: "python3 server.py --etcd {etcd}" has no {listen}`},
		{"command with a typo", "lockServers: {command: \"srv {listen} {etc}\"}\n", 1, `lockServers.command: unknown placeholder {etc}`},
		{"empty command", "lockServers: {command: \" \"}\n", 1, `lockServers.command: the lock server command line is empty`},
		{"command and unsafe", "lockServers: {command: \"srv {listen}\", unsafe: check-then-set}\n", 1, `switches of locksim's own lock server; they cannot go with lockServers.command`},
		{"command and a variant's unsafe", "lockServers: {command: \"srv {listen}\"}\nvariants:\n  broken: {lockServers: {unsafe: check-then-set}}\n", 3, `cannot go with lockServers.command`},
		{"unknown final", "final: stop\n", 1, `final must be "heal" or left out, got "stop"`},

		// steps: required fields, time, faults
		{"step without at", step("fault: heal"), 3, `step has no "at"`},
		{"step without fault", step("at: 1s", "target: etcd-1"), 3, `step has no "fault" (want one of crash, restart, pause, resume, partition, delay, heal, clock-skew)`},
		{"misspelt fault", step("at: 1s", "fault: pasue", "target: client-1"), 4, `unknown fault "pasue" (did you mean "pause"?)`},
		{"unknown fault", step("at: 1s", "fault: explode"), 4, `unknown fault "explode" (want one of crash, restart, pause, resume, partition, delay, heal, clock-skew)`},
		{"at beyond duration", step("at: 12s", "fault: heal"), 3, "at 12s is beyond the end of the run (duration 10s)"},
		{"fault does not take field", step("at: 1s", "fault: crash", "target: etcd-1", "latency: 5ms"), 6, `crash does not take "latency" (it takes target, restartAfter)`},
		{"heal takes no target", step("at: 1s", "fault: heal", "target: etcd-1"), 5, `heal does not take "target" (it takes only at, when and note)`},

		// targets
		{"client beyond topology", "topology: {clients: 3}\n" + step("at: 1s", "fault: pause", "target: client-9")[len("duration: 10s\n"):], 5, `target: "client-9" does not exist (the topology has client-1..client-3)`},
		{"etcd-4", step("at: 1s", "fault: crash", "target: etcd-4"), 5, `target: "etcd-4" does not exist (the topology has etcd-1..etcd-3)`},
		{"lockserver-4 with 3", step("at: 1s", "fault: crash", "target: lockserver-4"), 5, `"lockserver-4" does not exist (the topology has lockserver-1..lockserver-3)`},
		{"numbers start at 1", step("at: 1s", "fault: crash", "target: etcd-0"), 5, `target: unknown target "etcd-0"`},
		{"unknown role", step("at: 1s", "fault: crash", "target: etcd:boss"), 5, `target: unknown target "etcd:boss" (want etcd-N, etcd:leader, etcd:follower, lockserver-N, lockserver:any, balancer, balancer-N or balancer:master)`},
		{"unknown kind", step("at: 1s", "fault: crash", "target: node-1"), 5, `unknown target "node-1"`},
		{"crash a client", step("at: 1s", "fault: crash", "target: client:holder"), 5, `crash: target cannot be "client:holder" here (want etcd-N, etcd:leader, etcd:follower, lockserver-N, lockserver:any, balancer, balancer-N or balancer:master)`},
		{"restart a role", step("at: 1s", "fault: restart", "target: etcd:leader"), 5, `restart: target cannot be "etcd:leader" here (want etcd-N, lockserver-N, balancer or balancer-N)`},
		{"resume a role", step("at: 1s", "fault: resume", "target: client:holder"), 5, `resume: target cannot be "client:holder" here (want lockserver-N, client-N, balancer or balancer-N)`},
		{"crash without target", step("at: 1s", "fault: crash"), 3, "crash needs target (etcd-N, etcd:leader"},
		{"pause an etcd member", step("at: 1s", "fault: pause", "target: etcd-1"), 5, `pause: target cannot be "etcd-1" here (want lockserver-N, lockserver:any, client-N, client:holder, balancer, balancer-N or balancer:master)`},
		{"balancer-1 with one balancer", step("at: 1s", "fault: pause", "target: balancer-1"), 5, `target: "balancer-1" does not exist (the topology has one balancer, named "balancer")`},
		{"balancer with two", "topology: {balancers: 2}\n" + step("at: 1s", "fault: crash", "target: balancer")[len("duration: 10s\n"):], 5, `target: "balancer" is ambiguous: the topology has 2 balancers, balancer-1..balancer-2 (or say balancer:master)`},
		{"restart the master", "topology: {balancers: 2}\n" + step("at: 1s", "fault: restart", "target: balancer:master")[len("duration: 10s\n"):], 5, `restart: target cannot be "balancer:master" here`},
		{"clock-skew on a lock server", step("at: 1s", "fault: clock-skew", "target: lockserver-1", "skew: 2s"), 5, `clock-skew: target cannot be "lockserver-1" here (want client-N or client:holder)`},
		{"clock-skew without skew", step("at: 1s", "fault: clock-skew", "target: client-1"), 3, "clock-skew needs a non-zero skew"},

		// partition
		{"partition without a form", step("at: 1s", "fault: partition", "for: 2s"), 3, "partition needs exactly one of isolate, groups, bridge, or from+to (got 0)"},
		{"partition with two forms", step("at: 1s", "fault: partition", "isolate: etcd-1", "bridge: etcd-2"), 3, "(got 2)"},
		{"partition from without to", step("at: 1s", "fault: partition", "from: etcd-1"), 3, "a one-way partition needs both from and to"},
		{"partition from equals to", step("at: 1s", "fault: partition", "from: etcd-1", "to: etcd-1"), 6, `from and to are both "etcd-1"`},
		{"partition between lock servers", step("at: 1s", "fault: partition", "from: lockserver-1", "to: lockserver-2"), 6, "lock servers do not talk to each other"},
		{"partition from a balancer to etcd", "topology: {balancers: 2}\n" + step("at: 1s", "fault: partition", "from: balancer-1", "to: etcd-2")[len("duration: 10s\n"):], 6, "balancer and etcd do not talk to each other directly"},
		{"isolate a client", step("at: 1s", "fault: partition", "isolate: client-1"), 5, `partition: isolate cannot be "client-1" here`},
		{"bridge a lock server", step("at: 1s", "fault: partition", "bridge: lockserver-1"), 5, `partition: bridge cannot be "lockserver-1" here (want etcd-N, etcd:leader or etcd:follower)`},
		{"one group", step("at: 1s", "fault: partition", "groups: [[etcd-1, etcd-2, etcd-3]]"), 5, "groups needs at least two groups"},
		{"member in two groups", step("at: 1s", "fault: partition", "groups: [[etcd-1], [etcd-1, etcd-2]]"), 5, `groups: "etcd-1" is in more than one group`},
		{"role in groups", step("at: 1s", "fault: partition", "groups: [[etcd:leader], [etcd-2]]"), 5, `partition: groups cannot be "etcd:leader" here (want etcd-N, lockserver-N, balancer or balancer-N)`},
		{"empty group", step("at: 1s", "fault: partition", "groups: [[], [etcd-2]]"), 5, "groups: a group is empty"},

		// delay
		{"delay without link", step("at: 1s", "fault: delay", "latency: 5ms"), 3, "delay needs link"},
		{"delay without latency", step("at: 1s", "fault: delay", `link: "etcd-1<->etcd-2"`), 3, "delay needs latency > 0"},
		{"link without arrow", step("at: 1s", "fault: delay", "link: etcd-1 etcd-2", "latency: 5ms"), 5, `link "etcd-1 etcd-2": want "a->b" or "a<->b"`},
		{"link to a role", step("at: 1s", "fault: delay", "link: etcd:leader->etcd-2", "latency: 5ms"), 5, `link "etcd:leader->etcd-2": want "a->b" or "a<->b" between named components`},
		{"link between kinds that do not talk", step("at: 1s", "fault: delay", "link: client-1->etcd-2", "latency: 5ms"), 5, `client and etcd do not talk to each other directly`},
		{"link to itself", step("at: 1s", "fault: delay", "link: etcd-1<->etcd-1", "latency: 5ms"), 5, "joins etcd-1 to itself"},
		{"link to a missing member", step("at: 1s", "fault: delay", "link: etcd-1<->etcd-7", "latency: 5ms"), 5, `link: "etcd-7" does not exist`},

		// when
		{"when without holder", step("at: 1s", "when: {phase: acquired}", "fault: pause", "target: client-1"), 4, "when needs holder: client-N"},
		{"when without phase", step("at: 1s", "when: {holder: client-1}", "fault: pause", "target: client-1"), 4, "when needs phase (want one of acquired, after-read, before-write, released)"},
		{"when with unknown phase", step("at: 1s", "when:", "  holder: client-1", "  phase: afterread", "fault: pause", "target: client-1"), 6, `unknown phase "afterread" (did you mean "after-read"?)`},
		{"when holder is a lock server", step("at: 1s", "when: {holder: lockserver-1, phase: acquired}", "fault: pause", "target: client-1"), 4, `pause: when.holder cannot be "lockserver-1" here (want client-N)`},
		{"when holder beyond topology", step("at: 1s", "when: {holder: client-4, phase: acquired}", "fault: pause", "target: client-1"), 4, `when.holder: "client-4" does not exist`},

		// variants and expect
		{"bad variant name", "variants:\n  \"no spaces\": {fencing: false}\n", 2, `variant name "no spaces" must be a short word`},
		{"variant is not a mapping", "variants:\n  unfenced: false\n", 2, "variants.unfenced: want a mapping (key: value), got \"false\""},
		{"variant unsafe mode", "variants:\n  broken: {lockServers: {unsafe: yes}}\n", 2, `unknown unsafe mode "yes"`},
		{"expect names a missing variant", "variants:\n  fenced: {fencing: true}\nexpect:\n  unfenced: {resource: violated}\n", 4, `expect names variant "unfenced", which is not defined (want one of fenced)`},
		{"expect is flat although variants exist", "variants:\n  fenced: {}\n  unfenced: {fencing: false}\nexpect:\n  lock: linearizable\n", 5, "expect: the file has variants, so expect is keyed by variant (fenced, unfenced)"},
		{"expect keyed although no variants", "expect:\n  fenced: {lock: linearizable}\n", 2, `unknown key "fenced" in expect (want one of lock, resource, maxUnknown); the file has no variants`},
		{"expect unknown verdict", "expect:\n  lock: linearisable\n", 2, `expect lock: "linearisable" is not a verdict (want one of linearizable, violated)`},
		{"expect unknown resource verdict", "variants: {a: {}}\nexpect:\n  a: {resource: ok}\n", 3, `expect resource: "ok" is not a verdict`},

		// nemesis
		{"unknown nemesis fault", "nemesis:\n  every: 2s\n  faults: [crash-membr]\n", 3, `unknown nemesis fault "crash-membr" (did you mean "crash-member"?)`},
		{"nemesis fault from steps", "nemesis:\n  every: 2s\n  faults: [pause]\n", 3, `unknown nemesis fault "pause" (want one of crash-member, crash-leader, restart-member, partition-minority, partition-leader, pause-client, pause-lockserver, crash-lockserver, delay-link, clock-skew)`},
		{"nemesis fault twice", "nemesis:\n  every: 2s\n  faults:\n    - crash-member\n    - crash-member\n", 5, `nemesis fault "crash-member" is listed twice`},
		{"nemesis without faults", "nemesis:\n  every: 2s\n", 1, "nemesis.faults is empty"},
		{"nemesis without every", "nemesis:\n  faults: [crash-member]\n", 1, "nemesis.every must be more than 0s"},
		{"nemesis every beyond duration", "duration: 10s\nnemesis:\n  every: 20s\n  faults: [crash-member]\n", 3, "nemesis.every must be more than 0s and at most the duration (10s), got 20s"},
		{"nemesis for beyond every", "nemesis:\n  every: 2s\n  for: 3s\n  faults: [crash-member]\n", 3, "nemesis.for must be more than 0s and at most nemesis.every (2s), got 3s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("gc.yaml", []byte(tt.in))
			require.Error(t, err, "input:\n%s", tt.in)
			assert.Nil(t, s)
			require.ErrorIs(t, err, ErrInvalid)
			var list ErrorList
			require.ErrorAs(t, err, &list)
			got := list[0].Error()
			assert.True(t, strings.HasPrefix(got, fmt.Sprintf("gc.yaml:%d: ", tt.wantLine)), "got %q, want line %d", got, tt.wantLine)
			assert.Contains(t, got, tt.want)
		})
	}
}
