package scenarios

import (
	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/faults"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadmeExampleParses keeps the worked example in README.md honest.
func TestReadmeExampleParses(t *testing.T) {
	data, err := os.ReadFile("README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(data), "## A worked example\n\n```yaml\n")
	require.True(t, ok, "README has a worked example")
	example, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)

	s, err := Parse("README.md", []byte(example))
	require.NoError(t, err)
	assert.Equal(t, "gc-pause-past-lease", s.Name)
	assert.Equal(t, []string{"fenced", "unfenced"}, s.VariantNames())
	require.Len(t, s.Steps, 2)
	assert.Equal(t, &faults.Condition{Holder: "client-1", Phase: component.PhaseBeforeWrite}, s.Steps[0].When)

	// Every catalogue file is listed in the README's table.
	for _, name := range Names() {
		assert.Contains(t, string(data), "| `"+name+"` |", "README lists %s", name)
	}
}
