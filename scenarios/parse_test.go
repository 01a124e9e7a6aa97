package scenarios

import (
	"errors"
	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/faults"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// specExample is the example scenario of the format's documentation.
const specExample = `name: gc-pause-past-lease
description: Client 1 stops like a long GC pause after reading the resource; its lease expires.
seed: 7
duration: 30s
topology: {etcd: 3, lockServers: 3, balancer: round-robin, clients: 3}
lock: {ttl: 2s, wait: 1s}
workload:
  resources: ["order:12345"]
  hold: 100ms
  think: 20ms
fencing: true
variants:
  fenced: {fencing: true}
  unfenced: {fencing: false}
steps:
  - at: 3s
    when: {holder: client-1, phase: after-read}
    fault: pause
    target: client-1
    for: 5s
    note: "Client 1 is frozen."
  - {at: 12s, fault: partition, isolate: "etcd:leader", for: 4s}
  - {at: 18s, fault: crash, target: lockserver-2, restartAfter: 2s}
nemesis:
  every: 4s
  faults: [crash-member, partition-minority, pause-client]
final: heal
expect:
  fenced:   {lock: linearizable, resource: linearizable}
  unfenced: {resource: violated}
`

func TestParseSpecExample(t *testing.T) {
	got, err := Parse("scenarios/gc.yaml", []byte(specExample))
	require.NoError(t, err)
	got.pos = nil
	f, tr := false, true
	want := &Scenario{
		Path:        "scenarios/gc.yaml",
		Name:        "gc-pause-past-lease",
		Description: "Client 1 stops like a long GC pause after reading the resource; its lease expires.",
		Seed:        7,
		Duration:    30 * time.Second,
		Topology:    Topology{Etcd: 3, LockServers: 3, Clients: 3, Balancers: 1, Balancer: "round-robin"},
		Lock:        Lock{TTL: 2 * time.Second, Wait: time.Second},
		Workload:    Workload{Resources: []string{"order:12345"}, Hold: 100 * time.Millisecond, Think: 20 * time.Millisecond},
		Fencing:     true,
		Raft:        Raft{TickMs: 10, ElectionMs: 100},
		Variants:    []Variant{{Name: "fenced", Fencing: &tr}, {Name: "unfenced", Fencing: &f}},
		Steps: []faults.Step{
			{At: 3 * time.Second, When: &faults.Condition{Holder: "client-1", Phase: "after-read"}, Fault: "pause",
				Target: "client-1", For: 5 * time.Second, Note: "Client 1 is frozen.", Source: "step 1 (gc.yaml:16)"},
			{At: 12 * time.Second, Fault: "partition", Isolate: "etcd:leader", For: 4 * time.Second, Source: "step 2 (gc.yaml:22)"},
			{At: 18 * time.Second, Fault: "crash", Target: "lockserver-2", RestartAfter: 2 * time.Second, Source: "step 3 (gc.yaml:23)"},
		},
		Nemesis: &faults.NemesisSpec{Every: 4 * time.Second, Faults: []string{"crash-member", "partition-minority", "pause-client"}, For: 2 * time.Second,
			Members: 3, LockServers: 3, Clients: 3},
		Final: "heal",
		Expect: map[string]Expect{
			"fenced":   {Lock: "linearizable", Resource: "linearizable"},
			"unfenced": {Resource: "violated"},
		},
	}
	assert.Equal(t, want, got)
}

func TestParseDefaults(t *testing.T) {
	got, err := Parse("dir/minimal.yml", []byte("duration: 5s\n"))
	require.NoError(t, err)
	assert.Equal(t, "minimal", got.Name, "name defaults to the file's base name")
	assert.Equal(t, DefaultSeed, got.Seed)
	assert.Equal(t, 5*time.Second, got.Duration)
	assert.Equal(t, Topology{Etcd: 3, LockServers: 3, Clients: 3, Balancers: 1, Balancer: "round-robin"}, got.Topology)
	assert.Equal(t, Lock{TTL: 2 * time.Second, Wait: time.Second}, got.Lock)
	assert.Equal(t, Workload{Resources: []string{"order:12345"}, Hold: 100 * time.Millisecond, Think: 20 * time.Millisecond}, got.Workload)
	assert.True(t, got.Fencing)
	assert.Equal(t, Raft{TickMs: 10, ElectionMs: 100}, got.Raft)
	assert.Nil(t, got.Nemesis)
	assert.Empty(t, got.Expect)
	assert.Equal(t, []string{"default"}, got.VariantNames())
}

func TestParseDurations(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"300ms", 300 * time.Millisecond},
		{"2s", 2 * time.Second},
		{"1m30s", 90 * time.Second},
		{"2", 2 * time.Second},
		{"0.5", 500 * time.Millisecond},
		{`"3"`, 3 * time.Second},
		{"0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := Parse("d.yaml", []byte("workload: {hold: "+tt.in+"}\n"))
			require.NoError(t, err)
			assert.Equal(t, tt.want, s.Workload.Hold)
		})
	}
}

func TestParseExpectTopLevelIsDefault(t *testing.T) {
	s, err := Parse("e.yaml", []byte("expect: {lock: violated, maxUnknown: 3}\n"))
	require.NoError(t, err)
	three := 3
	assert.Equal(t, map[string]Expect{"default": {Lock: "violated", MaxUnknown: &three}}, s.Expect)
}

func TestParseBalancersAndVRRP(t *testing.T) {
	in := "topology: {balancers: 2}\nvrrp: {advertInterval: 250ms}\nvariants:\n  preempt: {}\n  nopreempt: {vrrp: {preempt: false}}\n" +
		"steps:\n  - {at: 1s, fault: crash, target: balancer:master, restartAfter: 2s}\n  - {at: 5s, fault: partition, groups: [[balancer-1], [balancer-2]], for: 1s}\n"
	s, err := Parse("lb.yaml", []byte(in))
	require.NoError(t, err)
	assert.Equal(t, 2, s.Topology.Balancers)
	assert.Equal(t, VRRP{AdvertInterval: 250 * time.Millisecond}, s.VRRP)
	for variant, want := range map[string]bool{"preempt": true, "nopreempt": false} {
		eff, err := s.Resolve(variant)
		require.NoError(t, err)
		assert.Equal(t, want, eff.Preempt, variant)
	}
	assert.Equal(t, 2, s.Topology.Counts()[component.Balancer])

	d, err := Parse("d.yaml", []byte("duration: 10s\n"))
	require.NoError(t, err)
	assert.Equal(t, 1, d.Topology.Balancers, "one balancer by default")
	assert.Equal(t, VRRP{}, d.VRRP, "preempt by default, the pace's interval")
}

func TestParseVariantUnsafeOverride(t *testing.T) {
	in := "lockServers: {unsafe: check-then-set}\nvariants:\n  broken: {}\n  fixed: {lockServers: {unsafe: null}}\n  unfenced: {fencing: false}\n"
	s, err := Parse("v.yaml", []byte(in))
	require.NoError(t, err)
	assert.Equal(t, []string{"broken", "fixed", "unfenced"}, s.VariantNames(), "file order is kept")
	tests := []struct {
		variant string
		want    Effective
	}{
		{"broken", Effective{Variant: "broken", Fencing: true, Unsafe: "check-then-set", Preempt: true}},
		{"fixed", Effective{Variant: "fixed", Fencing: true, Unsafe: "", Preempt: true}},
		{"unfenced", Effective{Variant: "unfenced", Fencing: false, Unsafe: "check-then-set", Preempt: true}},
		{"", Effective{Variant: "broken", Fencing: true, Unsafe: "check-then-set", Preempt: true}},
	}
	for _, tt := range tests {
		t.Run(tt.variant, func(t *testing.T) {
			got, err := s.Resolve(tt.variant)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	_, err = s.Resolve("nope")
	require.ErrorIs(t, err, ErrUnknownVariant)
}

func TestResolveDefaultVariant(t *testing.T) {
	s, err := Parse("d.yaml", []byte("fencing: false\nexpect: {resource: violated}\n"))
	require.NoError(t, err)
	got, err := s.Resolve("default")
	require.NoError(t, err)
	assert.Equal(t, Effective{Variant: "default", Fencing: false, Preempt: true, Expect: Expect{Resource: "violated"}}, got)
	_, err = s.Resolve("fenced")
	require.ErrorIs(t, err, ErrUnknownVariant)
}

func TestParseFileNamesThePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.yaml")
	require.NoError(t, os.WriteFile(path, []byte("name: x\nduration: 5s\nclients: 3\n"), 0o644))
	_, err := ParseFile(path)
	require.Error(t, err)
	assert.Equal(t, path+`:3: unknown key "clients" in the scenario (want one of name, description, seed, duration, topology, lock, workload, fencing, lockServers, raft, vrrp, variants, steps, nemesis, final, expect)`, err.Error())

	_, err = ParseFile(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestErrorListWrapsEveryProblem(t *testing.T) {
	in := "topology:\n  lockServers: 17\n  clients: 65\n"
	_, err := Parse("t.yaml", []byte(in))
	require.ErrorIs(t, err, ErrInvalid)
	var list ErrorList
	require.ErrorAs(t, err, &list)
	require.Len(t, list, 2)
	assert.Equal(t, []int{2, 3}, []int{list[0].Line, list[1].Line}, "sorted by line")
	var one *Error
	require.ErrorAs(t, err, &one)
	assert.Equal(t, "t.yaml", one.File)
	assert.Equal(t, "t.yaml:2: topology.lockServers must be between 1 and 16, got 17\nt.yaml:3: topology.clients must be between 1 and 64, got 65", err.Error())
}

func TestParseCapsTheNumberOfProblems(t *testing.T) {
	var b strings.Builder
	for i := range 50 {
		b.WriteString("k" + strings.Repeat("x", i) + ": 1\n")
	}
	_, err := Parse("many.yaml", []byte(b.String()))
	var list ErrorList
	require.ErrorAs(t, err, &list)
	assert.Len(t, list, maxErrors)
}

func TestValidateHandBuiltScenario(t *testing.T) {
	s, err := Parse("h.yaml", []byte("duration: 10s\n"))
	require.NoError(t, err)
	s.Steps = append(s.Steps, faults.Step{At: 11 * time.Second, Fault: faults.FaultHeal})
	err = s.Validate()
	require.Error(t, err)
	assert.Equal(t, "h.yaml: at 11s is beyond the end of the run (duration 10s)", err.Error())

	s.Steps = []faults.Step{{At: time.Second, Fault: faults.FaultCrash, Target: "etcd-1", Latency: time.Millisecond}}
	err = s.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `crash does not take "latency"`, "zero-value checks catch fields a fault does not take")
}

func TestParseRejectsOversizedFile(t *testing.T) {
	_, err := Parse("big.yaml", make([]byte, MaxFileSize+1))
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "larger than")
}

func TestProblemsErrNilWhenClean(t *testing.T) {
	p := &problems{file: "x"}
	assert.NoError(t, p.err())
	assert.False(t, errors.Is(p.err(), ErrInvalid))
}

func TestPlanOrdersStepsByAt(t *testing.T) {
	in := "duration: 10s\nsteps:\n  - {at: 5s, fault: heal, note: c}\n  - {at: 1s, fault: heal, note: a}\n  - {at: 5s, fault: heal, note: d}\n  - {at: 2s, fault: heal, note: b}\n"
	s, err := Parse("t.yaml", []byte(in))
	require.NoError(t, err)
	var got []string
	for _, st := range s.Plan(1) {
		got = append(got, st.Note)
	}
	assert.Equal(t, []string{"a", "b", "c", "d"}, got)
	assert.Equal(t, "c", s.Steps[0].Note, "Steps keeps file order")
}
