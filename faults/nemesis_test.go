package faults

import (
	"github.com/locksim/locksim/component"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0)) }

func TestNemesisDeterministic(t *testing.T) {
	spec := NemesisSpec{Every: time.Second, For: 500 * time.Millisecond}
	a := Nemesis(spec, time.Minute, seeded(7))
	b := Nemesis(spec, time.Minute, seeded(7))
	c := Nemesis(spec, time.Minute, seeded(8))
	require.NotEmpty(t, a)
	assert.Equal(t, a, b, "same seed, same plan")
	assert.NotEqual(t, a, c, "different seeds, different plans")
}

// memberDown reports whether s takes an etcd member down or isolates it.
func memberDown(s Step) bool {
	return s.Fault == FaultCrash && strings.HasPrefix(s.Target, "etcd") ||
		s.Fault == FaultPartition && strings.HasPrefix(s.Isolate, "etcd")
}

func TestNemesisInvariants(t *testing.T) {
	specs := []struct {
		name string
		spec NemesisSpec
	}{
		{"defaults", NemesisSpec{}},
		{"member faults only", NemesisSpec{Every: 2 * time.Second, Faults: []string{NemesisCrashMember, NemesisCrashLeader, NemesisRestartMember, NemesisPartitionMinority, NemesisPartitionLeader}}},
		{"For too long is clamped", NemesisSpec{Every: time.Second, For: 5 * time.Second}},
		{"bigger topology", NemesisSpec{Every: time.Second, Members: 5, LockServers: 4, Clients: 8}},
	}
	for _, tt := range specs {
		for seed := range uint64(20) {
			duration := 90 * time.Second
			steps := Nemesis(tt.spec, duration, seeded(seed))
			require.NotEmpty(t, steps, tt.name)
			var downUntil time.Duration
			var prevEnd time.Duration
			for i, s := range steps {
				require.NoError(t, s.Validate(), "%s seed %d step %d", tt.name, seed, i)
				assert.Equal(t, "nemesis", s.Source)
				span := stepSpan(s)
				assert.Positive(t, span, "every nemesis fault ends by itself")
				assert.LessOrEqual(t, s.At+span, duration, "ends within the run")
				assert.Less(t, prevEnd, s.At, "faults never overlap")
				prevEnd = s.At + span
				if memberDown(s) {
					assert.GreaterOrEqual(t, s.At, downUntil, "at most one member down at a time")
					downUntil = s.At + span
				}
			}
		}
	}
}

func TestNemesisChoosesOnlyRequestedFaults(t *testing.T) {
	spec := NemesisSpec{Every: time.Second, Faults: []string{NemesisPauseClient, NemesisDelayLink}, Clients: 2}
	steps := Nemesis(spec, time.Minute, seeded(3))
	var kinds []string
	for _, s := range steps {
		kinds = append(kinds, s.Fault)
		switch s.Fault {
		case FaultPause:
			assert.Contains(t, []string{"client-1", "client-2"}, s.Target)
		case FaultDelay:
			links, err := component.ParseLink(s.Link)
			require.NoError(t, err)
			assert.Len(t, links, 2)
			assert.GreaterOrEqual(t, s.Latency, 20*time.Millisecond)
		default:
			t.Fatalf("unexpected fault %q", s.Fault)
		}
	}
	assert.Contains(t, kinds, FaultPause)
	assert.Contains(t, kinds, FaultDelay)
}

func TestNemesisExpansion(t *testing.T) {
	tests := []struct {
		fault string
		check func(t *testing.T, s Step)
	}{
		{NemesisCrashLeader, func(t *testing.T, s Step) {
			assert.Equal(t, Step{At: time.Second, Fault: FaultCrash, Target: "etcd:leader", RestartAfter: 500 * time.Millisecond, Note: "nemesis: crash-leader", Source: "nemesis"}, s)
		}},
		{NemesisPartitionMinority, func(t *testing.T, s Step) {
			assert.Equal(t, "etcd:follower", s.Isolate)
			assert.Equal(t, 500*time.Millisecond, s.For)
		}},
		{NemesisRestartMember, func(t *testing.T, s Step) {
			assert.Equal(t, FaultCrash, s.Fault)
			assert.Equal(t, bounce, s.RestartAfter)
		}},
		{NemesisCrashLockServer, func(t *testing.T, s Step) {
			assert.True(t, strings.HasPrefix(s.Target, "lockserver-"))
			assert.Positive(t, s.RestartAfter)
		}},
		{NemesisClockSkew, func(t *testing.T, s Step) {
			assert.GreaterOrEqual(t, s.Skew.Abs(), 500*time.Millisecond)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			steps := Nemesis(NemesisSpec{Every: time.Second, For: 500 * time.Millisecond, Faults: []string{tt.fault}}, 1600*time.Millisecond, seeded(1))
			require.Len(t, steps, 1)
			tt.check(t, steps[0])
		})
	}
}

func TestNemesisSpecValidate(t *testing.T) {
	assert.NoError(t, NemesisSpec{Faults: slices.Clone(NemesisFaults)}.Validate())
	assert.ErrorIs(t, NemesisSpec{Faults: []string{"meteor"}}.Validate(), ErrInvalidStep)
	assert.ErrorIs(t, NemesisSpec{Every: -1}.Validate(), ErrInvalidStep)
}
