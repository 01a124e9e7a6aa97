package sim

import (
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
)

// Annotations draws fault events into porcupine's view of a history: one
// annotation per fault, on the row of the component it hit.
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
		out = append(out, history.Annotation{
			Label: ev.Fault + " " + ev.Resolved, Target: ev.Resolved,
			Start: int64(ev.Start), End: int64(end), Description: desc,
		})
	}
	return out
}
