package scenarios

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/locksim/locksim/faults"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withoutSources clears what depends on the file's layout: the path, the
// key positions and the steps' Source lines.
func withoutSources(s *Scenario) *Scenario {
	c := *s
	c.Path, c.pos = "", nil
	c.Steps = append([]faults.Step(nil), s.Steps...)
	for i := range c.Steps {
		c.Steps[i].Source = ""
	}
	return &c
}

// Encode writes what Parse reads: every scenario of the catalogue, the soak,
// the test fixtures and the examples' scenarios survives Parse -> Encode ->
// Parse unchanged.
func TestEncodeRoundTripsEveryScenario(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	more, err := filepath.Glob("soak/*.yaml")
	require.NoError(t, err)
	fixtures, err := filepath.Glob("../testdata/short-*.yaml")
	require.NoError(t, err)
	examples, err := filepath.Glob("../examples/*/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, examples, "the examples' scenarios (lockServers.command) round-trip too")
	files = append(append(append(files, more...), fixtures...), examples...)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			want, err := Parse(filepath.Base(f), data)
			require.NoError(t, err)
			out := Encode(want)
			got, err := Parse("encoded.yaml", out)
			require.NoError(t, err, "encoded:\n%s", out)
			got.Name = want.Name // the name is written, but a file's default name is its base name
			assert.Equal(t, withoutSources(want), withoutSources(got), "encoded:\n%s", out)
		})
	}
}

// A scenario built by hand, as the web page builds its recorded clicks,
// encodes to a short file with one step a line.
func TestEncodeHandBuiltScenario(t *testing.T) {
	minusOne := -1 * time.Second
	s := &Scenario{
		Name: "recorded", Description: "Recorded from the locksim web visualizer.", Seed: DefaultSeed, Duration: 9 * time.Second,
		Topology: Topology{Etcd: 3, LockServers: 3, Clients: 3, Balancers: DefaultBalancers, Balancer: DefaultBalancer},
		Lock:     Lock{TTL: DefaultTTL, Wait: DefaultWait}, Fencing: true,
		Workload: Workload{Resources: []string{DefaultResource}, Hold: DefaultHold, Think: DefaultThink},
		Raft:     Raft{TickMs: DefaultTickMs, ElectionMs: DefaultElectionMs},
		Steps: []faults.Step{
			{At: 1500 * time.Millisecond, Fault: faults.FaultCrash, Target: "etcd-2"},
			{At: 2 * time.Second, Fault: faults.FaultPartition, Groups: [][]string{{"etcd-1"}, {"etcd-3", "lockserver-1"}}},
			{At: 3 * time.Second, Fault: faults.FaultClockSkew, Target: "client-1", Skew: minusOne, Note: "yes: a note: with colons"},
			{At: 4 * time.Second, Fault: faults.FaultHeal},
		},
		Final: FinalHeal, Expect: map[string]Expect{},
	}
	got := string(Encode(s))
	want := `name: recorded
description: Recorded from the locksim web visualizer.
duration: 9s
steps:
  - {at: 1.5s, fault: crash, target: etcd-2}
  - {at: 2s, fault: partition, groups: [[etcd-1], [etcd-3, lockserver-1]]}
  - {at: 3s, fault: clock-skew, target: client-1, skew: -1s, note: 'yes: a note: with colons'}
  - {at: 4s, fault: heal}
final: heal
`
	assert.Equal(t, want, got)
	back, err := Parse("recorded.yaml", []byte(got))
	require.NoError(t, err)
	assert.Equal(t, withoutSources(s), withoutSources(back))
}
