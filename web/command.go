package web

import (
	"errors"
	"fmt"
)

// Actions of POST /api/control that the page's server knows itself. Every
// other action is a fault (crash, restart, pause, resume, partition, with a
// Target or Groups) that the Controller validates and applies: the fault
// vocabulary is the fault runner's, not the page's.
const (
	ActionHeal        = "heal"         // undo every fault in effect
	ActionFencing     = "fencing"      // Value: fencing on or off
	ActionRunScenario = "run-scenario" // Scenario: catalogue name (or YAML: a scenario file)
	ActionContinue    = "continue"     // fire the next scenario step in step mode
	ActionStepMode    = "step-mode"    // Value: pause the scenario before each step
	ActionExport      = "export"       // answered by the server: the clicks so far as scenario YAML
)

var (
	// ErrBadCommand reports a malformed control command (HTTP 400). A
	// Controller wraps it for a fault it cannot apply as written.
	ErrBadCommand = errors.New("web: bad command")
	// ErrForbidden reports a missing or wrong control token, or a foreign origin.
	ErrForbidden = errors.New("web: forbidden")
	// ErrNoController reports a control request on a read-only server.
	ErrNoController = errors.New("web: read-only: no controller")
)

// Validate checks the fields of the server's own actions; a fault action is
// the Controller's to check.
func (c Command) Validate() error {
	switch c.Action {
	case ActionRunScenario:
		if c.Scenario == "" && c.YAML == "" {
			return fmt.Errorf("%w: run-scenario needs a scenario name or YAML", ErrBadCommand)
		}
	case "":
		return fmt.Errorf("%w: missing action", ErrBadCommand)
	}
	return nil
}
