package live

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/scenarios"
	"github.com/locksim/locksim/web"
)

func TestExport(t *testing.T) {
	tests := []struct {
		name string
		in   string
		cmds []web.TimedCommand
		want string
	}{
		{
			name: "nothing clicked",
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
			cmds: []web.TimedCommand{
				{At: 3200 * time.Millisecond, Command: web.Command{Action: "crash", Target: "etcd-1"}},
				{At: 5*time.Second + 400*time.Microsecond, Command: web.Command{Action: "restart", Target: "etcd-1"}},
				{At: 7 * time.Second, Command: web.Command{Action: "partition", Groups: [][]string{{"etcd-3"}, {"etcd-1", "etcd-2"}}}},
				{At: 9 * time.Second, Command: web.Command{Action: "pause", Target: "client-2"}},
				{At: 11500 * time.Millisecond, Command: web.Command{Action: "heal"}},
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
			name: "switches that are not faults are told in the description",
			in:   "yes",
			cmds: []web.TimedCommand{
				{At: time.Second, Command: web.Command{Action: "fencing", Value: false}},
				{At: 2 * time.Second, Command: web.Command{Action: "run-scenario", Scenario: "gc-pause\nx"}},
				{At: 3 * time.Second, Command: web.Command{Action: "resume", Target: "client-1"}},
			},
			want: `name: "yes"
description: 'Recorded from the locksim web visualizer. At 1s: fencing turned off. At 2s: ran scenario gc-pause x.'
duration: 8s
steps:
  - {at: 3s, fault: resume, target: client-1}
final: heal
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(Export(tt.in, tt.cmds))
			assert.Equal(t, tt.want, got)
			// And the scenario parser reads it back: what the page exports
			// can be run with `locksim run`.
			sc, err := scenarios.Parse("exported.yaml", []byte(got))
			require.NoError(t, err)
			assert.Equal(t, scenarios.FinalHeal, sc.Final)
		})
	}
}

// The page's fault actions are faults.Steps: the fault runner's validation
// decides what the page may do.
func TestStepOfUsesTheFaultVocabulary(t *testing.T) {
	tests := []struct {
		name    string
		cmd     web.Command
		isFault bool
		valid   bool
	}{
		{"crash with target", web.Command{Action: "crash", Target: "etcd-1"}, true, true},
		{"crash the balancer", web.Command{Action: "crash", Target: "balancer"}, true, true},
		{"crash without target", web.Command{Action: "crash"}, true, false},
		{"crash a client", web.Command{Action: "crash", Target: "client-1"}, true, false},
		{"pause a client", web.Command{Action: "pause", Target: "client-1"}, true, true},
		{"pause a member", web.Command{Action: "pause", Target: "etcd-1"}, true, false},
		{"partition two groups", web.Command{Action: "partition", Groups: [][]string{{"etcd-1"}, {"etcd-2", "etcd-3"}}}, true, true},
		{"partition one group", web.Command{Action: "partition", Groups: [][]string{{"etcd-1"}}}, true, false},
		{"partition an empty group", web.Command{Action: "partition", Groups: [][]string{{"etcd-1"}, {}}}, true, false},
		{"partition a node twice", web.Command{Action: "partition", Groups: [][]string{{"etcd-1"}, {"etcd-1"}}}, true, false},
		{"heal is the page's own", web.Command{Action: "heal"}, false, false},
		{"unknown action", web.Command{Action: "format-disk"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, ok := stepOf(tt.cmd)
			require.Equal(t, tt.isFault, ok)
			if !ok {
				return
			}
			err := st.Validate()
			if tt.valid {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, faults.ErrInvalidStep)
			}
		})
	}
}
