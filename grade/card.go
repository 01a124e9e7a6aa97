package grade

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/locksim/locksim/conformance"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
)

// Card is the report card of one grade.
type Card struct {
	LockServer string              `json:"lockServer"` // what was graded
	Seeds      []int64             `json:"seeds"`
	Battery    *conformance.Report `json:"battery,omitempty"` // nil with SkipBattery
	Runs       []RunResult         `json:"runs"`
	Started    time.Time           `json:"started"`
	Elapsed    time.Duration       `json:"elapsedNs"`
	// Pass: every battery check passed (or was skipped) and every run
	// checked linearizable, lock and resource.
	Pass bool `json:"pass"`
	// Violated: some run's lock or resource history was violated, or a
	// battery check failed. A card can fail without a violation when a
	// check gave up (verdict unknown): nothing was proven.
	Violated bool     `json:"violated"`
	Findings []string `json:"findings,omitempty"` // one line per problem, for the summary
}

// RunResult is one scenario variant on one seed against the lock servers
// under grade.
type RunResult struct {
	Scenario     string                `json:"scenario"`
	Variant      string                `json:"variant"`
	Seed         int64                 `json:"seed"`
	Lock         history.Verdict       `json:"lock"`
	Resource     history.Verdict       `json:"resource"`
	Acquires     history.OutcomeCounts `json:"acquires"`
	Availability Availability          `json:"availability"`
	Faults       int                   `json:"faults"`
	Explanations []string              `json:"explanations,omitempty"`
	Dir          string                `json:"dir"`  // the run's folder: history.jsonl, report.json, lock server logs
	HTML         string                `json:"html"` // porcupine's view of the history
}

// Pass reports whether both checks found the run linearizable.
func (r RunResult) Pass() bool {
	return r.Lock == history.Linearizable && r.Resource == history.Linearizable
}

// Availability counts the acquires called while a fault was in effect, and
// those called while none was: answered means granted, or refused because
// the lock was held (lock_busy) — the service did its job; the rest failed
// (unavailable, timed out) or ended unknown.
type Availability struct {
	DuringFaults Tally `json:"duringFaults"`
	Otherwise    Tally `json:"otherwise"`
}

// Tally is how many acquires were answered out of how many.
type Tally struct {
	Answered int `json:"answered"`
	Total    int `json:"total"`
}

// String is "94% of 310", or "-" with no acquire.
func (t Tally) String() string {
	if t.Total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%% of %d", 100*float64(t.Answered)/float64(t.Total), t.Total)
}

// availability tallies the acquires of ops by whether a fault was in effect
// when they were called. Fault windows are the events' [Start, End] (an
// active fault runs to the end of the run); instantaneous heals are not
// faults.
func availability(ops []history.Op, events []faults.Event, runEnd time.Duration) Availability {
	type window struct{ from, to int64 }
	var ws []window
	for _, ev := range events {
		if ev.Fault == faults.FaultHeal || ev.Error != "" {
			continue
		}
		end := ev.End
		if ev.Active || end < ev.Start {
			end = runEnd
		}
		ws = append(ws, window{int64(ev.Start), int64(end)})
	}
	var a Availability
	for _, op := range ops {
		if op.Op != history.OpAcquire {
			continue
		}
		t := &a.Otherwise
		for _, w := range ws {
			if op.Call >= w.from && op.Call <= w.to {
				t = &a.DuringFaults
				break
			}
		}
		t.Total++
		if op.Outcome == history.OK || (op.Outcome == history.Fail && op.Output.Code == "lock_busy") {
			t.Answered++
		}
	}
	return a
}

// settle computes Pass, Violated and Findings.
func (c *Card) settle() {
	c.Pass, c.Violated, c.Findings = true, false, nil
	if c.Battery != nil {
		for _, ch := range c.Battery.Checks {
			if ch.Result == conformance.Fail {
				c.Pass, c.Violated = false, true
				c.Findings = append(c.Findings, fmt.Sprintf("API check %q failed: %s", ch.Name, ch.Detail))
			}
		}
	}
	for _, r := range c.Runs {
		if r.Pass() {
			continue
		}
		c.Pass = false
		if r.Lock == history.Violated || r.Resource == history.Violated {
			c.Violated = true
			c.Findings = append(c.Findings, fmt.Sprintf("%s/%s seed %d: lock %s, resource %s", r.Scenario, r.Variant, r.Seed, r.Lock, r.Resource))
			continue
		}
		c.Findings = append(c.Findings, fmt.Sprintf("%s/%s seed %d: not proven (lock %s, resource %s: the checker gave up)", r.Scenario, r.Variant, r.Seed, r.Lock, r.Resource))
	}
}

// write writes card.json, report.md and index.html into dir.
func (c *Card) write(dir string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"card.json": append(b, '\n'), "report.md": c.Markdown(dir), "index.html": c.HTML(dir)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// rel is path relative to dir (for links in the report), or path itself.
func rel(dir, path string) string {
	if path == "" {
		return ""
	}
	if r, err := filepath.Rel(dir, path); err == nil {
		return filepath.ToSlash(r)
	}
	return path
}
