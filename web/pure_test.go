package web

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
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
		{"crash with target", Command{Action: "crash", Target: "etcd-1"}, false},
		{"crash without target", Command{Action: "crash"}, true},
		{"pause a client", Command{Action: "pause", Target: "client-1"}, false},
		{"partition two groups", Command{Action: "partition", Groups: [][]string{{"etcd-1"}, {"etcd-2", "etcd-3"}}}, false},
		{"partition one group", Command{Action: "partition", Groups: [][]string{{"etcd-1"}}}, true},
		{"partition an empty group", Command{Action: "partition", Groups: [][]string{{"etcd-1"}, {}}}, true},
		{"partition a node twice", Command{Action: "partition", Groups: [][]string{{"etcd-1"}, {"etcd-1"}}}, true},
		{"heal", Command{Action: "heal"}, false},
		{"fencing off", Command{Action: "fencing", Value: false}, false},
		{"run a named scenario", Command{Action: "run-scenario", Scenario: "gc-pause"}, false},
		{"run nothing", Command{Action: "run-scenario"}, true},
		{"continue", Command{Action: "continue"}, false},
		{"step mode", Command{Action: "step-mode", Value: true}, false},
		{"unknown action", Command{Action: "format-disk"}, true},
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

func TestExportYAML(t *testing.T) {
	tests := []struct {
		name string
		in   string
		cmds []TimedCommand
		want string
	}{
		{
			name: "nothing clicked",
			in:   "",
			want: `name: recorded
description: Recorded from the locksim web visualizer.
duration: 5s
steps: []
final: heal
`,
		},
		{
			name: "faults become steps at their times",
			in:   "my-run",
			cmds: []TimedCommand{
				{At: 3200 * time.Millisecond, Command: Command{Action: "crash", Target: "etcd-1"}},
				{At: 5*time.Second + 400*time.Microsecond, Command: Command{Action: "restart", Target: "etcd-1"}},
				{At: 7 * time.Second, Command: Command{Action: "partition", Groups: [][]string{{"etcd-3"}, {"etcd-1", "etcd-2"}}}},
				{At: 9 * time.Second, Command: Command{Action: "pause", Target: "client-2"}},
				{At: 11500 * time.Millisecond, Command: Command{Action: "heal"}},
			},
			want: `name: my-run
description: Recorded from the locksim web visualizer.
duration: 16s
steps:
  - {at: 3.2s, fault: crash, target: etcd-1}
  - {at: 5s, fault: restart, target: etcd-1}
  - {at: 7s, fault: partition, groups: [[etcd-3], [etcd-1, etcd-2]]}
  - {at: 9s, fault: pause, target: client-2}
  - {at: 11.5s, fault: heal}
final: heal
`,
		},
		{
			name: "switches that are not faults become comments",
			in:   "yes",
			cmds: []TimedCommand{
				{At: time.Second, Command: Command{Action: "fencing", Value: false}},
				{At: 2 * time.Second, Command: Command{Action: "run-scenario", Scenario: "gc-pause\nx"}},
				{At: 3 * time.Second, Command: Command{Action: "resume", Target: "odd name: yes"}},
			},
			want: `name: "yes"
description: Recorded from the locksim web visualizer.
duration: 8s
# at 1s: fencing turned off
# at 2s: ran scenario gc-pause x
steps:
  - {at: 3s, fault: resume, target: "odd name: yes"}
final: heal
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ExportYAML(tt.in, tt.cmds)
			assert.Equal(t, tt.want, got)

			// And it is YAML that reads back as the same steps.
			var doc struct {
				Name  string `yaml:"name"`
				Steps []struct {
					At     string     `yaml:"at"`
					Fault  string     `yaml:"fault"`
					Target string     `yaml:"target"`
					Groups [][]string `yaml:"groups"`
				} `yaml:"steps"`
				Final string `yaml:"final"`
			}
			require.NoError(t, yaml.Unmarshal([]byte(got), &doc))
			wantName := tt.in
			if wantName == "" {
				wantName = "recorded"
			}
			assert.Equal(t, wantName, doc.Name)
			assert.Equal(t, "heal", doc.Final)
			var faults int
			for _, c := range tt.cmds {
				if c.Action != "fencing" && c.Action != "run-scenario" {
					faults++
				}
			}
			require.Len(t, doc.Steps, faults)
			for _, s := range doc.Steps {
				_, err := time.ParseDuration(s.At)
				assert.NoError(t, err, s.At)
			}
			if strings.Contains(tt.name, "faults become steps") {
				assert.Equal(t, [][]string{{"etcd-3"}, {"etcd-1", "etcd-2"}}, doc.Steps[2].Groups)
			}
		})
	}
}
