package web

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ExportYAML turns the control actions clicked in the page into a scenario
// file (SPEC §5): every fault action becomes a step at the time it was
// clicked, since the sandbox started; actions that are not faults (fencing,
// scenario runs, step mode) are kept as comments. The scenario lasts five
// seconds past its last step and ends healed. The output is deterministic.
func ExportYAML(name string, cmds []TimedCommand) string {
	if name == "" {
		name = "recorded"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\n", yamlString(name))
	b.WriteString("description: Recorded from the locksim web visualizer.\n")
	var last time.Duration
	var steps, notes []string
	for _, c := range cmds {
		at := c.At.Round(time.Millisecond)
		if at < 0 {
			at = 0
		}
		if at > last {
			last = at
		}
		if step, ok := yamlStep(at, c.Command); ok {
			steps = append(steps, step)
			continue
		}
		notes = append(notes, fmt.Sprintf("# at %s: %s", at, describe(c.Command)))
	}
	fmt.Fprintf(&b, "duration: %s\n", (last + 5*time.Second).Truncate(time.Second))
	for _, n := range notes {
		b.WriteString(n + "\n")
	}
	if len(steps) == 0 {
		b.WriteString("steps: []\n")
	} else {
		b.WriteString("steps:\n")
		for _, s := range steps {
			b.WriteString(s)
		}
	}
	b.WriteString("final: heal\n")
	return b.String()
}

func yamlStep(at time.Duration, c Command) (string, bool) {
	switch c.Action {
	case ActionCrash, ActionRestart, ActionPause, ActionResume:
		return fmt.Sprintf("  - {at: %s, fault: %s, target: %s}\n", at, c.Action, yamlString(c.Target)), true
	case ActionHeal:
		return fmt.Sprintf("  - {at: %s, fault: heal}\n", at), true
	case ActionPartition:
		groups := make([]string, len(c.Groups))
		for i, g := range c.Groups {
			names := make([]string, len(g))
			for j, n := range g {
				names[j] = yamlString(n)
			}
			groups[i] = "[" + strings.Join(names, ", ") + "]"
		}
		return fmt.Sprintf("  - {at: %s, fault: partition, groups: [%s]}\n", at, strings.Join(groups, ", ")), true
	}
	return "", false
}

func describe(c Command) string {
	switch c.Action {
	case ActionFencing:
		if c.Value {
			return "fencing turned on"
		}
		return "fencing turned off"
	case ActionStepMode:
		if c.Value {
			return "step mode on"
		}
		return "step mode off"
	case ActionRunScenario:
		if c.Scenario == "" {
			return "ran a scenario from YAML"
		}
		return "ran scenario " + oneLine(c.Scenario)
	}
	return oneLine(c.Action)
}

var plainYAML = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9:._/-]*$`)

// yamlString quotes s unless it is a plain scalar that YAML reads back as the
// same string.
func yamlString(s string) string {
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "null", "y", "n":
		return strconv.Quote(s)
	}
	if plainYAML.MatchString(s) && !strings.HasSuffix(s, ":") && !strings.Contains(s, ": ") {
		return s
	}
	return strconv.Quote(s)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
