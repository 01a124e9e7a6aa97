package scenarios

import (
	"fmt"

	"github.com/locksim/locksim/faults"
)

// step validates one step: what faults.Step.Check finds against the
// scenario's topology, each problem on the line of the field it concerns,
// and a step beyond the end of the run.
func (v *validator) step(i int, st faults.Step) {
	path := fmt.Sprintf("steps[%d]", i)
	line := func(field string) int {
		if field != "" {
			if l := v.s.pos[path+"."+field]; l != 0 {
				return l
			}
		}
		return v.s.pos[path]
	}
	if st.At > v.s.Duration {
		v.add(line("at"), "at %s is beyond the end of the run (duration %s)", st.At, v.s.Duration)
	}
	for _, p := range st.Check(v.s.Topology.Counts()) {
		v.add(line(p.Field), "%s", p.Msg)
	}
}
