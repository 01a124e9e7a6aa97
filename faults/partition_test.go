package faults

import (
	"github.com/locksim/locksim/component"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var members = []string{"etcd-1", "etcd-2", "etcd-3", "lockserver-1"}

func both(a, b string) []component.Link {
	return []component.Link{{From: a, To: b}, {From: b, To: a}}
}

func TestCutsFor(t *testing.T) {
	tests := []struct {
		name    string
		step    Step
		want    []component.Link
		wantErr error
	}{
		{
			name: "isolate cuts X from everyone, both ways",
			step: Step{Fault: FaultPartition, Isolate: "etcd-2"},
			want: []component.Link{
				{From: "etcd-1", To: "etcd-2"},
				{From: "etcd-2", To: "etcd-1"}, {From: "etcd-2", To: "etcd-3"}, {From: "etcd-2", To: "lockserver-1"},
				{From: "etcd-3", To: "etcd-2"},
				{From: "lockserver-1", To: "etcd-2"},
			},
		},
		{
			name: "groups cut across groups only; unlisted members untouched",
			step: Step{Fault: FaultPartition, Groups: [][]string{{"etcd-1"}, {"etcd-2", "etcd-3"}}},
			want: []component.Link{
				{From: "etcd-1", To: "etcd-2"}, {From: "etcd-1", To: "etcd-3"},
				{From: "etcd-2", To: "etcd-1"},
				{From: "etcd-3", To: "etcd-1"},
			},
		},
		{
			name: "bridge splits the rest alternately; the bridge is cut from nobody",
			step: Step{Fault: FaultPartition, Bridge: "etcd-1"},
			// rest sorted: etcd-2, etcd-3, lockserver-1 -> halves [etcd-2 lockserver-1] [etcd-3]
			want: []component.Link{
				{From: "etcd-2", To: "etcd-3"},
				{From: "etcd-3", To: "etcd-2"}, {From: "etcd-3", To: "lockserver-1"},
				{From: "lockserver-1", To: "etcd-3"},
			},
		},
		{
			name: "bridge with explicit halves",
			step: Step{Fault: FaultPartition, Bridge: "etcd-3", Groups: [][]string{{"etcd-1"}, {"etcd-2"}}},
			want: both("etcd-1", "etcd-2"),
		},
		{
			name: "from-to is one direction",
			step: Step{Fault: FaultPartition, From: "lockserver-1", To: "etcd-1"},
			want: []component.Link{{From: "lockserver-1", To: "etcd-1"}},
		},
		{
			name:    "unknown member",
			step:    Step{Fault: FaultPartition, Isolate: "etcd-9"},
			wantErr: ErrUnknownMember,
		},
		{
			name:    "two kinds at once",
			step:    Step{Fault: FaultPartition, Isolate: "etcd-1", From: "etcd-2", To: "etcd-3"},
			wantErr: ErrInvalidStep,
		},
		{
			name:    "overlapping groups",
			step:    Step{Fault: FaultPartition, Groups: [][]string{{"etcd-1"}, {"etcd-1", "etcd-2"}}},
			wantErr: ErrInvalidStep,
		},
		{
			name:    "bridge inside a half",
			step:    Step{Fault: FaultPartition, Bridge: "etcd-1", Groups: [][]string{{"etcd-1"}, {"etcd-2"}}},
			wantErr: ErrInvalidStep,
		},
		{
			name:    "single group",
			step:    Step{Fault: FaultPartition, Groups: [][]string{{"etcd-1"}}},
			wantErr: ErrInvalidStep,
		},
		{
			name:    "not a partition",
			step:    Step{Fault: FaultCrash, Target: "etcd-1"},
			wantErr: ErrInvalidStep,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CutsFor(tt.step, members)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestStepValidate(t *testing.T) {
	tests := []struct {
		name string
		step Step
		ok   bool
	}{
		{"crash", Step{Fault: FaultCrash, Target: "etcd:leader", RestartAfter: time.Second}, true},
		{"crash without target", Step{Fault: FaultCrash}, false},
		{"pause", Step{Fault: FaultPause, Target: "client-1", For: time.Second}, true},
		{"clock-skew needs skew", Step{Fault: FaultClockSkew, Target: "client-1"}, false},
		{"partition with roles", Step{Fault: FaultPartition, Isolate: "etcd:leader"}, true},
		{"partition without shape", Step{Fault: FaultPartition}, false},
		{"delay", Step{Fault: FaultDelay, Link: "lockserver-1->etcd-2", Latency: time.Millisecond}, true},
		{"delay without latency", Step{Fault: FaultDelay, Link: "lockserver-1->etcd-2"}, false},
		{"delay link and from", Step{Fault: FaultDelay, Link: "lockserver-1->etcd-2", From: "lockserver-1", To: "etcd-2", Latency: 1}, false},
		{"delay between kinds that do not talk", Step{Fault: FaultDelay, Link: "client-1->etcd-2", Latency: 1}, false},
		{"crash a client", Step{Fault: FaultCrash, Target: "client-1"}, false},
		{"crash the balancer", Step{Fault: FaultCrash, Target: "balancer"}, true},
		{"pause an etcd member", Step{Fault: FaultPause, Target: "etcd-1"}, false},
		{"heal", Step{Fault: FaultHeal}, true},
		{"unknown fault", Step{Fault: "explode"}, false},
		{"no fault", Step{}, false},
		{"negative for", Step{Fault: FaultPause, Target: "client-1", For: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.step.Validate()
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, ErrInvalidStep)
			}
		})
	}
}

// Balancers are partitioned only by steps that name them: the meaning of
// isolating an etcd member or a lock server does not change with them.
func TestCutsForBalancers(t *testing.T) {
	withLBs := []string{"etcd-1", "etcd-2", "lockserver-1", "balancer-1", "balancer-2"}
	tests := []struct {
		name string
		step Step
		want []component.Link
	}{
		{
			name: "isolating a lock server leaves the balancers alone",
			step: Step{Fault: FaultPartition, Isolate: "lockserver-1"},
			want: []component.Link{
				{From: "etcd-1", To: "lockserver-1"}, {From: "etcd-2", To: "lockserver-1"},
				{From: "lockserver-1", To: "etcd-1"}, {From: "lockserver-1", To: "etcd-2"},
			},
		},
		{
			name: "isolating a balancer cuts it from everyone, the other balancer included",
			step: Step{Fault: FaultPartition, Isolate: "balancer-1"},
			want: []component.Link{
				{From: "balancer-1", To: "balancer-2"}, {From: "balancer-1", To: "etcd-1"}, {From: "balancer-1", To: "etcd-2"}, {From: "balancer-1", To: "lockserver-1"},
				{From: "balancer-2", To: "balancer-1"},
				{From: "etcd-1", To: "balancer-1"}, {From: "etcd-2", To: "balancer-1"},
				{From: "lockserver-1", To: "balancer-1"},
			},
		},
		{
			name: "a split between the balancers cuts only their adverts",
			step: Step{Fault: FaultPartition, Groups: [][]string{{"balancer-1"}, {"balancer-2"}}},
			want: both("balancer-1", "balancer-2"),
		},
		{
			name: "a bridge splits the others, balancers left out",
			step: Step{Fault: FaultPartition, Bridge: "etcd-1"},
			want: both("etcd-2", "lockserver-1"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CutsFor(tt.step, withLBs)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestStepCheckBalancerTargets(t *testing.T) {
	one := Topology{component.Etcd: 3, component.LockServer: 3, component.Client: 3, component.Balancer: 1}
	two := Topology{component.Etcd: 3, component.LockServer: 3, component.Client: 3, component.Balancer: 2}
	tests := []struct {
		name    string
		step    Step
		top     Topology
		wantErr string // "" = valid
	}{
		{"crash the only balancer", Step{Fault: FaultCrash, Target: "balancer"}, one, ""},
		{"crash balancer-2 of two", Step{Fault: FaultCrash, Target: "balancer-2", RestartAfter: time.Second}, two, ""},
		{"crash the master", Step{Fault: FaultCrash, Target: "balancer:master"}, two, ""},
		{"pause the master", Step{Fault: FaultPause, Target: "balancer:master", For: time.Second}, two, ""},
		{"resume balancer-1", Step{Fault: FaultResume, Target: "balancer-1"}, two, ""},
		{"isolate the master", Step{Fault: FaultPartition, Isolate: "balancer:master"}, two, ""},
		{"split the balancers", Step{Fault: FaultPartition, Groups: [][]string{{"balancer-1"}, {"balancer-2"}}}, two, ""},
		{"one way between the balancers", Step{Fault: FaultPartition, From: "balancer-1", To: "balancer-2"}, two, ""},
		{"delay the adverts", Step{Fault: FaultDelay, Link: "balancer-1<->balancer-2", Latency: time.Second}, two, ""},
		{"balancer is ambiguous with two", Step{Fault: FaultCrash, Target: "balancer"}, two, `"balancer" is ambiguous: the topology has 2 balancers`},
		{"balancer-1 with one balancer", Step{Fault: FaultCrash, Target: "balancer-1"}, one, `"balancer-1" does not exist (the topology has one balancer, named "balancer")`},
		{"balancer-3 of two", Step{Fault: FaultPause, Target: "balancer-3"}, two, `"balancer-3" does not exist (the topology has balancer-1..balancer-2)`},
		{"restart the master", Step{Fault: FaultRestart, Target: "balancer:master"}, two, `restart: target cannot be "balancer:master" here (want etcd-N, lockserver-N, balancer or balancer-N)`},
		{"balancer to etcd", Step{Fault: FaultPartition, From: "balancer-1", To: "etcd-1"}, two, "balancer and etcd do not talk to each other directly"},
		{"resume the master", Step{Fault: FaultResume, Target: "balancer:master"}, two, "cannot be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probs := tt.step.Check(tt.top)
			if tt.wantErr == "" {
				assert.Empty(t, probs)
				return
			}
			require.NotEmpty(t, probs)
			assert.Contains(t, probs[0].Msg, tt.wantErr)
		})
	}
}
