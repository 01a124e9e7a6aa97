package web

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMerge(t *testing.T) {
	tests := []struct {
		name       string
		prev, next Frame
		want       Frame
	}{
		{
			name: "state comes from the later frame",
			prev: Frame{Seq: 1, T: 10, Pace: "fast", Members: []Member{{Name: "etcd-1", Leader: true}}},
			next: Frame{Seq: 2, T: 20, Pace: "classroom", Members: []Member{{Name: "etcd-1"}}},
			want: Frame{Seq: 2, T: 20, Pace: "classroom", Members: []Member{{Name: "etcd-1"}}},
		},
		{
			name: "ops of both frames are kept in order",
			prev: Frame{Seq: 1, Ops: []Op{{ID: 1}, {ID: 2}}},
			next: Frame{Seq: 2, Ops: []Op{{ID: 3}}},
			want: Frame{Seq: 2, Ops: []Op{{ID: 1}, {ID: 2}, {ID: 3}}},
		},
		{
			name: "a completed op replaces its pending version in place",
			prev: Frame{Seq: 1, Ops: []Op{{ID: 1, Call: 5}, {ID: 2, Call: 6}}},
			next: Frame{Seq: 2, Ops: []Op{{ID: 1, Call: 5, Return: 9, Outcome: "ok"}, {ID: 3}}},
			want: Frame{Seq: 2, Ops: []Op{{ID: 1, Call: 5, Return: 9, Outcome: "ok"}, {ID: 2, Call: 6}, {ID: 3}}},
		},
		{
			name: "faults are upserted by id",
			prev: Frame{Seq: 1, Faults: []Fault{{ID: 1, Fault: "crash", Start: 3}}},
			next: Frame{Seq: 2, Faults: []Fault{{ID: 2, Fault: "pause"}, {ID: 1, Fault: "crash", Start: 3, End: 7}}},
			want: Frame{Seq: 2, Faults: []Fault{{ID: 1, Fault: "crash", Start: 3, End: 7}, {ID: 2, Fault: "pause"}}},
		},
		{
			name: "ops of the earlier frame survive a frame without ops",
			prev: Frame{Seq: 1, Ops: []Op{{ID: 1}}, Faults: []Fault{{ID: 4}}},
			next: Frame{Seq: 2},
			want: Frame{Seq: 2, Ops: []Op{{ID: 1}}, Faults: []Fault{{ID: 4}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prevOps := append([]Op(nil), tt.prev.Ops...)
			got := Merge(tt.prev, tt.next)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, prevOps, tt.prev.Ops, "Merge must not modify its inputs")
		})
	}
}

func TestCommandValidate(t *testing.T) {
	tests := []struct {
		name    string
		cmd     Command
		wantErr bool
	}{
		// Fault actions are the Controller's to check (package live checks
		// them with the fault runner's own validation).
		{"crash", Command{Action: "crash", Target: "etcd-1"}, false},
		{"heal", Command{Action: "heal"}, false},
		{"fencing off", Command{Action: "fencing", Value: false}, false},
		{"run a named scenario", Command{Action: "run-scenario", Scenario: "gc-pause"}, false},
		{"run nothing", Command{Action: "run-scenario"}, true},
		{"continue", Command{Action: "continue"}, false},
		{"step mode", Command{Action: "step-mode", Value: true}, false},
		{"no action", Command{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cmd.Validate()
			if tt.wantErr {
				require.ErrorIs(t, err, ErrBadCommand)
				return
			}
			require.NoError(t, err)
		})
	}
}
