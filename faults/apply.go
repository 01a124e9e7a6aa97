package faults

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// dueUndo pops the earliest undo if it is due.
func (r *Runner) dueUndo(now time.Duration) (undo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.undos) == 0 || r.undos[0].at > now {
		return undo{}, false
	}
	u := r.undos[0]
	r.undos = r.undos[1:]
	return u, true
}

func (r *Runner) schedule(evID int, after time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	r.undos = append(r.undos, undo{at: r.events[evID-1].Start + after, seq: r.seq, evID: evID})
	slices.SortFunc(r.undos, func(a, b undo) int {
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
		}
		return a.seq - b.seq
	})
}

// begin records a new event and returns its ID.
func (r *Runner) begin(s Step, target, resolved string) int {
	r.mu.Lock()
	ev := Event{
		ID: len(r.events) + 1, Fault: s.Fault, Target: target, Resolved: resolved,
		Start: r.since(), Active: true, Note: s.Note, Source: s.Source,
	}
	r.events = append(r.events, ev)
	r.mu.Unlock()
	r.emit(ev)
	return ev.ID
}

// keep marks an applied fault as active until undone; err (a partial failure) is recorded.
func (r *Runner) keep(id int, a *activeFault, err error) {
	r.mu.Lock()
	r.active[id] = a
	if err != nil {
		r.events[id-1].Error = err.Error()
	}
	ev := r.events[id-1]
	r.mu.Unlock()
	if err != nil {
		r.emit(ev)
	}
}

// end closes event id (an undone, instantaneous or failed fault), appending err to its Error.
func (r *Runner) end(id int, err error) {
	r.mu.Lock()
	ev := &r.events[id-1]
	ev.End, ev.Active = r.since(), false
	if err != nil {
		ev.Error = strings.TrimPrefix(ev.Error+"; "+err.Error(), "; ")
	}
	delete(r.active, id)
	r.undos = slices.DeleteFunc(r.undos, func(u undo) bool { return u.evID == id })
	out := *ev
	r.mu.Unlock()
	r.emit(out)
}

func (r *Runner) emit(ev Event) {
	if r.OnEvent != nil {
		r.OnEvent(ev)
	}
}

func (r *Runner) failed(s Step, err error) {
	id := r.begin(s, describe(s), "")
	r.end(id, err)
}

// resolve maps a role to a name; who (from a When condition) answers client:holder.
func (r *Runner) resolve(name, who string) (string, error) {
	if !strings.Contains(name, ":") {
		return name, nil
	}
	if name == "client:holder" && who != "" {
		return who, nil
	}
	got, err := r.Env.Resolve(name)
	if err != nil {
		return "", fmt.Errorf("faults: resolve %s: %w", name, err)
	}
	return got, nil
}

// resolveStep resolves every name in s.
func (r *Runner) resolveStep(s Step, who string) (Step, error) {
	var errs []error
	one := func(p *string) {
		if *p == "" {
			return
		}
		got, err := r.resolve(*p, who)
		errs = append(errs, err)
		*p = got
	}
	for _, p := range []*string{&s.Target, &s.Isolate, &s.Bridge, &s.From, &s.To} {
		one(p)
	}
	groups := make([][]string, len(s.Groups))
	for i, g := range s.Groups {
		groups[i] = slices.Clone(g)
		for j := range groups[i] {
			one(&groups[i][j])
		}
	}
	s.Groups = groups
	if s.Link != "" {
		links, err := ParseLink(s.Link)
		if err != nil {
			return s, err
		}
		one(&links[0].From)
		one(&links[0].To)
		sep := "->"
		if len(links) == 2 {
			sep = "<->"
		}
		s.Link = links[0].From + sep + links[0].To
	}
	return s, errors.Join(errs...)
}

// fire applies one step; who is the answer of its When condition, if any.
func (r *Runner) fire(ctx context.Context, s Step, who string) {
	target := describe(s)
	if err := s.Validate(); err != nil {
		r.failed(s, err)
		return
	}
	rs, err := r.resolveStep(s, who)
	if err != nil {
		r.failed(s, err)
		return
	}
	switch s.Fault {
	case FaultCrash, FaultPause, FaultClockSkew:
		id := r.begin(s, target, rs.Target)
		switch s.Fault {
		case FaultCrash:
			err = r.Env.Crash(rs.Target)
		case FaultPause:
			err = r.Env.Pause(rs.Target)
		default:
			err = r.Env.ClockSkew(rs.Target, s.Skew)
		}
		if err != nil {
			r.end(id, err)
			return
		}
		r.keep(id, &activeFault{kind: s.Fault, name: rs.Target}, nil)
		if d := stepSpan(s); d > 0 {
			r.schedule(id, d)
		}
	case FaultRestart, FaultResume:
		id := r.begin(s, target, rs.Target)
		undone := FaultCrash
		if s.Fault == FaultRestart {
			err = r.Env.Restart(ctx, rs.Target)
		} else {
			undone = FaultPause
			err = r.Env.Resume(rs.Target)
		}
		if err == nil {
			for _, aid := range r.activeIDs(undone, rs.Target) {
				r.end(aid, nil)
			}
		}
		r.end(id, err)
	case FaultPartition:
		cuts, err := CutsFor(rs, r.Env.Members())
		if err != nil {
			r.failed(s, err)
			return
		}
		id := r.begin(s, target, describePartition(rs, r.Env.Members()))
		var errs []error
		for _, c := range cuts {
			r.mu.Lock()
			r.cuts[c]++
			first := r.cuts[c] == 1
			r.mu.Unlock()
			if first {
				if err := r.Env.Cut(c.From, c.To); err != nil {
					errs = append(errs, fmt.Errorf("cut %s: %w", c, err))
				}
			}
		}
		r.keep(id, &activeFault{kind: FaultPartition, cuts: cuts}, errors.Join(errs...))
		if s.For > 0 {
			r.schedule(id, s.For)
		}
	case FaultDelay:
		links, err := delayLinks(rs)
		if err != nil {
			r.failed(s, err)
			return
		}
		id := r.begin(s, target, rs.Link+rs.From+joinIf(rs.From, "->")+rs.To)
		var errs []error
		for _, l := range links {
			if err := r.Env.Delay(l.From, l.To, s.Latency, s.Jitter); err != nil {
				errs = append(errs, fmt.Errorf("delay %s: %w", l, err))
			}
		}
		r.keep(id, &activeFault{kind: FaultDelay, delays: links}, errors.Join(errs...))
		if s.For > 0 {
			r.schedule(id, s.For)
		}
	case FaultHeal:
		id := r.begin(s, target, "")
		err := r.Env.Heal()
		r.endNet()
		r.end(id, err)
	}
}

func joinIf(s, sep string) string {
	if s == "" {
		return ""
	}
	return sep
}

// endNet ends every active partition, delay and skew after Env.Heal.
func (r *Runner) endNet() {
	r.mu.Lock()
	var ids []int
	for id, a := range r.active {
		if a.kind == FaultPartition || a.kind == FaultDelay || a.kind == FaultClockSkew {
			ids = append(ids, id)
		}
	}
	clear(r.cuts)
	r.mu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		r.end(id, nil)
	}
}

func (r *Runner) activeIDs(kind, name string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []int
	for id, a := range r.active {
		if a.kind == kind && a.name == name {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// undo reverts the active fault of event id (if still active) and ends the event.
func (r *Runner) undo(ctx context.Context, id int) {
	r.mu.Lock()
	a, ok := r.active[id]
	r.mu.Unlock()
	if !ok {
		return
	}
	var errs []error
	switch a.kind {
	case FaultCrash:
		errs = append(errs, r.Env.Restart(ctx, a.name))
	case FaultPause:
		errs = append(errs, r.Env.Resume(a.name))
	case FaultClockSkew:
		errs = append(errs, r.Env.ClockSkew(a.name, 0))
	case FaultDelay:
		for _, l := range a.delays {
			if err := r.Env.Delay(l.From, l.To, 0, 0); err != nil {
				errs = append(errs, fmt.Errorf("undelay %s: %w", l, err))
			}
		}
	case FaultPartition:
		for _, c := range a.cuts {
			r.mu.Lock()
			last := false
			if r.cuts[c] > 0 {
				r.cuts[c]--
				last = r.cuts[c] == 0
			}
			if last {
				delete(r.cuts, c)
			}
			r.mu.Unlock()
			if last {
				if err := r.Env.Mend(c.From, c.To); err != nil {
					errs = append(errs, fmt.Errorf("mend %s: %w", c, err))
				}
			}
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("undo: %w", err)
	}
	r.end(id, err)
}

// describe renders a step's target as written.
func describe(s Step) string {
	switch s.Fault {
	case FaultPartition:
		switch {
		case s.Isolate != "":
			return "isolate " + s.Isolate
		case s.Bridge != "":
			return "bridge " + s.Bridge
		case s.From != "" || s.To != "":
			return s.From + "->" + s.To
		default:
			return fmt.Sprint(s.Groups)
		}
	case FaultDelay:
		if s.Link != "" {
			return s.Link
		}
		return s.From + "->" + s.To
	}
	return s.Target
}

// describePartition renders the resolved groups of a partition.
func describePartition(s Step, members []string) string {
	if s.From != "" {
		return s.From + "->" + s.To
	}
	groups, err := partitionGroups(s, members)
	if err != nil {
		return ""
	}
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = fmt.Sprint(g)
	}
	if s.Bridge != "" {
		return parts[0] + " | " + parts[1] + " via " + s.Bridge
	}
	return strings.Join(parts, " | ")
}
