package sim

import (
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
)

// Annotations turns fault events into the fault windows of a history check:
// drawn into porcupine's view (one annotation per fault, on the row of the
// component it hit) and blamed by the explanations of violations (by ID).
// An active fault ends nowhere (End = Start).
func Annotations(events []faults.Event) []history.Annotation {
	var out []history.Annotation
	for _, ev := range events {
		end := ev.End
		if ev.Active || end < ev.Start {
			end = ev.Start
		}
		desc := ev.Note
		if ev.Error != "" {
			desc = "failed: " + ev.Error
		}
		target := ev.Resolved
		if target == "" {
			target = ev.Target
		}
		out = append(out, history.Annotation{
			ID: ev.ID, Fault: ev.Fault, Source: ev.Source,
			Label: ev.Fault + " " + target, Target: target,
			Start: int64(ev.Start), End: int64(end), Description: desc,
		})
	}
	return out
}
