package scenarios

import (
	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/faults"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCatalogueParses(t *testing.T) {
	names := Names()
	require.NotEmpty(t, names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			s, err := Load(name)
			require.NoError(t, err)
			assert.Equal(t, name, s.Name, "name matches the file name")
			sentences := strings.Count(s.Description, ". ") + 1
			assert.GreaterOrEqual(t, sentences, 2, "description has 2-4 sentences")
			assert.LessOrEqual(t, sentences, 5, "description has 2-4 sentences")
			assert.GreaterOrEqual(t, s.Duration.Seconds(), 8.0)
			assert.LessOrEqual(t, s.Duration.Seconds(), 20.0)
			assert.GreaterOrEqual(t, s.Lock.TTL.Seconds(), 1.0)
			assert.LessOrEqual(t, s.Lock.TTL.Seconds(), 2.0)
			perResource := (s.Topology.Clients + len(s.Workload.Resources) - 1) / len(s.Workload.Resources)
			assert.LessOrEqual(t, perResource, 4, "at most 4 clients per resource")
			for _, st := range s.Steps {
				assert.NotEmpty(t, st.Note, "%s has a note", st.Source)
			}
			for _, v := range s.VariantNames() {
				eff, err := s.Resolve(v)
				require.NoError(t, err)
				assert.True(t, eff.Expect.Lock != "" || eff.Expect.Resource != "", "variant %s asserts something", v)
			}
		})
	}
}

func TestCatalogueHasTheCourse(t *testing.T) {
	want := []string{
		"balancer-backend-flapping", "balancer-master-crash", "balancer-master-pause", "balancer-split-brain", "bridge", "client-clock-skew", "follower-crash-restart", "follower-unheard", "gc-pause-past-lease",
		"leader-crash", "leader-isolated", "lockserver-crash", "member-delay", "minority-isolated", "nemesis-soak",
		"no-faults-contention", "one-way-cut", "rolling-restart", "unsafe-check-then-set",
	}
	assert.Equal(t, want, Names())
}

// expectations lists what each catalogue scenario must assert, per variant.
func TestCatalogueExpectations(t *testing.T) {
	safe := map[string]Expect{DefaultVariant: {Lock: Linearizable, Resource: Linearizable}}
	fencedUnfenced := map[string]Expect{
		"fenced":   {Lock: Linearizable, Resource: Linearizable},
		"unfenced": {Lock: Linearizable, Resource: Violated},
	}
	tests := map[string]map[string]Expect{
		"unsafe-check-then-set": {DefaultVariant: {Lock: Violated}},
		"gc-pause-past-lease":   fencedUnfenced,
		"client-clock-skew":     fencedUnfenced,
		"balancer-master-pause": {
			"preempt":   {Lock: Linearizable, Resource: Linearizable},
			"nopreempt": {Lock: Linearizable, Resource: Linearizable},
		},
	}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			s, err := Load(name)
			require.NoError(t, err)
			want, ok := tests[name]
			if !ok {
				want = safe
			}
			assert.Equal(t, want, s.Expect)
		})
	}
}

func TestGCPauseOutlastsTheLease(t *testing.T) {
	s, err := Load("gc-pause-past-lease")
	require.NoError(t, err)
	require.NotEmpty(t, s.Steps)
	pause := s.Steps[0]
	assert.Equal(t, faults.FaultPause, pause.Fault)
	assert.Equal(t, &faults.Condition{Holder: "client-1", Phase: component.PhaseBeforeWrite, Timeout: pause.When.Timeout}, pause.When,
		"the pause starts after client-1 read the resource and checked its lease, before it writes")
	assert.Equal(t, "client-1", pause.Target)
	assert.Greater(t, pause.For, s.Lock.TTL, "the pause outlasts the lease")

	fenced, err := s.Resolve("fenced")
	require.NoError(t, err)
	unfenced, err := s.Resolve("unfenced")
	require.NoError(t, err)
	assert.True(t, fenced.Fencing)
	assert.False(t, unfenced.Fencing)
}

func TestUnsafeScenarioSwitchesCheckThenSet(t *testing.T) {
	s, err := Load("unsafe-check-then-set.yaml")
	require.NoError(t, err)
	eff, err := s.Resolve("")
	require.NoError(t, err)
	assert.Equal(t, UnsafeCheckThenSet, eff.Unsafe)
}

func TestNemesisSoak(t *testing.T) {
	s, err := Load("nemesis-soak")
	require.NoError(t, err)
	require.NotNil(t, s.Nemesis)
	assert.Equal(t, 20*time.Second, s.Duration)
	assert.Equal(t, FinalHeal, s.Final)
	assert.Empty(t, s.Steps)
}

func TestRollingRestartRestartsEveryMember(t *testing.T) {
	s, err := Load("rolling-restart")
	require.NoError(t, err)
	var crashed []string
	down := 0
	for _, st := range s.Steps {
		switch st.Fault {
		case faults.FaultCrash:
			crashed = append(crashed, st.Target)
			down++
		case faults.FaultRestart:
			down--
		}
		assert.LessOrEqual(t, down, 1, "one member down at a time")
	}
	assert.Equal(t, []string{"etcd-1", "etcd-2", "etcd-3"}, crashed)
}

func TestLoadUnknownName(t *testing.T) {
	_, err := Load("no-such-scenario")
	require.ErrorIs(t, err, ErrNotInCatalogue)
	assert.Contains(t, err.Error(), "leader-crash")
}

func TestLoadAll(t *testing.T) {
	all, err := LoadAll()
	require.NoError(t, err)
	assert.Len(t, all, len(Names()))
}
