package web

import (
	"errors"
	"fmt"
)

// Actions accepted by POST /api/control.
const (
	ActionCrash       = "crash"        // Target: etcd-N, lockserver-N, balancer
	ActionRestart     = "restart"      // Target
	ActionPause       = "pause"        // Target: client-N, lockserver-N
	ActionResume      = "resume"       // Target
	ActionPartition   = "partition"    // Groups: two or more groups of node names
	ActionHeal        = "heal"         // undo every partition
	ActionFencing     = "fencing"      // Value: fencing on or off
	ActionRunScenario = "run-scenario" // Scenario: catalogue name (or YAML: a scenario file)
	ActionContinue    = "continue"     // fire the next scenario step in step mode
	ActionStepMode    = "step-mode"    // Value: pause the scenario before each step
	ActionExport      = "export"       // answered by the server: the clicks so far as scenario YAML
)

var (
	// ErrBadCommand reports a malformed control command.
	ErrBadCommand = errors.New("web: bad command")
	// ErrForbidden reports a missing or wrong control token, or a foreign origin.
	ErrForbidden = errors.New("web: forbidden")
	// ErrNoController reports a control request on a read-only server.
	ErrNoController = errors.New("web: read-only: no controller")
)

// Validate checks that c names a known action with the fields it needs.
func (c Command) Validate() error {
	switch c.Action {
	case ActionCrash, ActionRestart, ActionPause, ActionResume:
		if c.Target == "" {
			return fmt.Errorf("%w: %s needs a target", ErrBadCommand, c.Action)
		}
	case ActionPartition:
		if len(c.Groups) < 2 {
			return fmt.Errorf("%w: partition needs at least two groups", ErrBadCommand)
		}
		seen := map[string]bool{}
		for _, g := range c.Groups {
			if len(g) == 0 {
				return fmt.Errorf("%w: partition group is empty", ErrBadCommand)
			}
			for _, n := range g {
				if n == "" || seen[n] {
					return fmt.Errorf("%w: partition names %q twice or empty", ErrBadCommand, n)
				}
				seen[n] = true
			}
		}
	case ActionRunScenario:
		if c.Scenario == "" && c.YAML == "" {
			return fmt.Errorf("%w: run-scenario needs a scenario name or YAML", ErrBadCommand)
		}
	case ActionHeal, ActionFencing, ActionContinue, ActionStepMode, ActionExport:
	case "":
		return fmt.Errorf("%w: missing action", ErrBadCommand)
	default:
		return fmt.Errorf("%w: unknown action %q", ErrBadCommand, c.Action)
	}
	return nil
}
