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
