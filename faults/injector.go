package faults

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/locksim/locksim/component"
)

// Injector applies faults to an Env and keeps the one log of fault events of
// a sandbox: what is in effect, since when, and how it ended. Scripted steps
// (through a Runner), nemesis draws and clicks in the web page (Apply) all go
// through one Injector, so a fault looks and is undone the same way whatever
// its source, and overlapping partitions from different sources never mend a
// link another still needs.
//
// Set the exported fields before the first call; the zero Clock is the real
// one and the zero Start is the moment of the first call.
type Injector struct {
	Env   Env
	Clock Clock
	// Start is the base of Event times.
	Start time.Time

	mu     sync.Mutex
	events []Event
	active map[int]*activeFault   // by event ID
	cuts   map[component.Link]int // overlapping cuts, by link
	subs   map[int]func(Event)
	subSeq int
}

type activeFault struct {
	kind   string // crash, pause, partition, delay, clock-skew
	name   string // crash, pause, clock-skew
	cuts   []component.Link
	delays []component.Link
}

func (in *Injector) init() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.active != nil {
		return
	}
	if in.Clock == nil {
		in.Clock = RealClock{}
	}
	if in.Start.IsZero() {
		in.Start = in.Clock.Now()
	}
	in.active = map[int]*activeFault{}
	in.cuts = map[component.Link]int{}
	in.subs = map[int]func(Event){}
}

func (in *Injector) since() time.Duration { return in.Clock.Now().Sub(in.Start) }

// Subscribe calls f with every event when it starts and when it changes or
// ends, synchronously from the goroutine that applied the fault; f must not
// block long. cancel stops the calls.
func (in *Injector) Subscribe(f func(Event)) (cancel func()) {
	in.init()
	in.mu.Lock()
	defer in.mu.Unlock()
	in.subSeq++
	id := in.subSeq
	in.subs[id] = f
	return func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		delete(in.subs, id)
	}
}

// Events returns a copy of every event so far, in ID order.
func (in *Injector) Events() []Event {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.events)
}

// Active reports whether event id's fault is still in effect.
func (in *Injector) Active(id int) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	_, ok := in.active[id]
	return ok
}

// Apply fires s now (its At and When are ignored): it validates s, resolves
// its roles, applies it through Env and records an event, which stays active
// until the fault is undone (Undo, a restart or resume step, a heal, or
// HealAll). It returns the event's ID and the error of validating,
// resolving or applying, which the event also carries.
func (in *Injector) Apply(ctx context.Context, s Step) (int, error) {
	return in.fire(ctx, s, "")
}

// fire applies one step; who is the answer of its When condition, if any.
func (in *Injector) fire(ctx context.Context, s Step, who string) (int, error) {
	in.init()
	if err := s.Validate(); err != nil {
		return in.failed(s, err), err
	}
	rs, err := in.resolveStep(s, who)
	if err != nil {
		return in.failed(s, err), err
	}
	switch s.Fault {
	case FaultCrash, FaultPause, FaultClockSkew:
		return in.hold(s, rs)
	case FaultRestart, FaultResume:
		return in.revive(ctx, s, rs)
	case FaultPartition:
		return in.partition(s, rs)
	case FaultDelay:
		return in.delay(s, rs)
	default: // FaultHeal
		id := in.begin(s, describe(s), "")
		err := in.heal(ctx)
		in.end(id, err)
		return id, err
	}
}

// hold crashes, pauses or skews the clock of a component (s resolved as rs);
// the fault stays active until undone.
func (in *Injector) hold(s, rs Step) (int, error) {
	id := in.begin(s, describe(s), rs.Target)
	var err error
	switch s.Fault {
	case FaultCrash:
		err = in.Env.Crash(rs.Target)
	case FaultPause:
		err = in.Env.Pause(rs.Target)
	default:
		err = in.Env.ClockSkew(rs.Target, s.Skew)
	}
	if err != nil {
		in.end(id, err)
		return id, err
	}
	in.keep(id, &activeFault{kind: s.Fault, name: rs.Target}, nil)
	return id, nil
}

// revive restarts or resumes a component and ends the crash or pause that
// held it.
func (in *Injector) revive(ctx context.Context, s, rs Step) (int, error) {
	id := in.begin(s, describe(s), rs.Target)
	var err error
	undone := FaultCrash
	if s.Fault == FaultRestart {
		err = in.Env.Restart(ctx, rs.Target)
	} else {
		undone = FaultPause
		err = in.Env.Resume(rs.Target)
	}
	if err == nil {
		for _, aid := range in.activeIDs(undone, rs.Target) {
			in.end(aid, nil)
		}
	}
	in.end(id, err)
	return id, err
}

// partition cuts the links of a partition that no other active partition
// cuts already.
func (in *Injector) partition(s, rs Step) (int, error) {
	cuts, err := CutsFor(rs, in.Env.Members())
	if err != nil {
		return in.failed(s, err), err
	}
	id := in.begin(s, describe(s), describePartition(rs, in.Env.Members()))
	var errs []error
	for _, c := range cuts {
		if in.count(c, +1) {
			if err := in.Env.Cut(c.From, c.To); err != nil {
				errs = append(errs, fmt.Errorf("cut %s: %w", c, err))
			}
		}
	}
	err = errors.Join(errs...)
	in.keep(id, &activeFault{kind: FaultPartition, cuts: cuts}, err)
	return id, err
}

// delay slows the links of a delay step.
func (in *Injector) delay(s, rs Step) (int, error) {
	links, err := component.ParseLink(rs.Link)
	if err != nil {
		return in.failed(s, err), err
	}
	id := in.begin(s, describe(s), rs.Link)
	var errs []error
	for _, l := range links {
		if err := in.Env.Delay(l.From, l.To, s.Latency, s.Jitter); err != nil {
			errs = append(errs, fmt.Errorf("delay %s: %w", l, err))
		}
	}
	err = errors.Join(errs...)
	in.keep(id, &activeFault{kind: FaultDelay, delays: links}, err)
	return id, err
}

// heal restarts every crashed component and resumes every paused one that a
// fault of this Injector holds, then heals the network (Env.Heal) and ends
// every partition, delay and skew.
func (in *Injector) heal(ctx context.Context) error {
	var errs []error
	for _, id := range in.activeIDs("", "") {
		in.mu.Lock()
		a, ok := in.active[id]
		in.mu.Unlock()
		if ok && (a.kind == FaultCrash || a.kind == FaultPause) {
			in.Undo(ctx, id)
			if ev := in.event(id); ev.Error != "" {
				errs = append(errs, errors.New(ev.Error))
			}
		}
	}
	errs = append(errs, in.Env.Heal())
	in.endNet()
	return errors.Join(errs...)
}

// count adds d to the number of active partitions that cut c and reports
// whether that number just became 1 (d > 0: cut it now) or 0 (d < 0: mend
// it now).
func (in *Injector) count(c component.Link, d int) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if d < 0 && in.cuts[c] == 0 {
		return false // already mended by a heal
	}
	in.cuts[c] += d
	n := in.cuts[c]
	if n == 0 {
		delete(in.cuts, c)
		return true
	}
	return d > 0 && n == 1
}

// Record logs an event that was not applied through Env — a condition of
// the whole run, such as lock servers that are broken on purpose — so that
// it shows on the timeline and can be blamed like any fault. ev's ID and
// Start are set here; it stays active (no undo ends it).
func (in *Injector) Record(ev Event) int {
	in.init()
	in.mu.Lock()
	ev.ID, ev.Start, ev.Active, ev.End = len(in.events)+1, in.since(), true, 0
	in.events = append(in.events, ev)
	in.mu.Unlock()
	in.emit(ev)
	return ev.ID
}

// Undo reverts the fault of event id, if it is still in effect, and ends
// the event: a crashed component is restarted, a paused one resumed, a
// partition's cuts mended (unless another partition still needs them), a
// delay or skew removed.
func (in *Injector) Undo(ctx context.Context, id int) {
	in.init()
	in.mu.Lock()
	a, ok := in.active[id]
	in.mu.Unlock()
	if !ok {
		return
	}
	var errs []error
	switch a.kind {
	case FaultCrash:
		errs = append(errs, in.Env.Restart(ctx, a.name))
	case FaultPause:
		errs = append(errs, in.Env.Resume(a.name))
	case FaultClockSkew:
		errs = append(errs, in.Env.ClockSkew(a.name, 0))
	case FaultDelay:
		for _, l := range a.delays {
			if err := in.Env.Delay(l.From, l.To, 0, 0); err != nil {
				errs = append(errs, fmt.Errorf("undelay %s: %w", l, err))
			}
		}
	case FaultPartition:
		for _, c := range a.cuts {
			if in.count(c, -1) {
				if err := in.Env.Mend(c.From, c.To); err != nil {
					errs = append(errs, fmt.Errorf("mend %s: %w", c, err))
				}
			}
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("undo: %w", err)
	}
	in.end(id, err)
}

// HealAll undoes every fault still in effect, as a heal step does: it
// restarts crashed components, resumes paused ones and heals the network,
// recorded as a "heal" event with the given source and note.
func (in *Injector) HealAll(ctx context.Context, source, note string) error {
	_, err := in.fire(ctx, Step{Fault: FaultHeal, Source: source, Note: note}, "")
	return err
}

// begin records a new event and returns its ID.
func (in *Injector) begin(s Step, target, resolved string) int {
	in.mu.Lock()
	ev := Event{
		ID: len(in.events) + 1, Fault: s.Fault, Target: target, Resolved: resolved,
		Start: in.since(), Active: true, Note: s.Note, Source: s.Source,
	}
	in.events = append(in.events, ev)
	in.mu.Unlock()
	in.emit(ev)
	return ev.ID
}

// keep marks an applied fault as active until undone; err (a partial
// failure) is recorded.
func (in *Injector) keep(id int, a *activeFault, err error) {
	in.mu.Lock()
	in.active[id] = a
	if err != nil {
		in.events[id-1].Error = err.Error()
	}
	ev := in.events[id-1]
	in.mu.Unlock()
	if err != nil {
		in.emit(ev)
	}
}

// end closes event id (an undone, instantaneous or failed fault), appending
// err to its Error.
func (in *Injector) end(id int, err error) {
	in.mu.Lock()
	ev := &in.events[id-1]
	ev.End, ev.Active = in.since(), false
	if err != nil {
		ev.Error = strings.TrimPrefix(ev.Error+"; "+err.Error(), "; ")
	}
	delete(in.active, id)
	out := *ev
	in.mu.Unlock()
	in.emit(out)
}

func (in *Injector) event(id int) Event {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.events[id-1]
}

func (in *Injector) emit(ev Event) {
	in.mu.Lock()
	subs := make([]func(Event), 0, len(in.subs))
	for _, id := range slices.Sorted(maps.Keys(in.subs)) {
		subs = append(subs, in.subs[id])
	}
	in.mu.Unlock()
	for _, f := range subs {
		f(ev)
	}
}

func (in *Injector) failed(s Step, err error) int {
	id := in.begin(s, describe(s), "")
	in.end(id, err)
	return id
}

// endNet ends every active partition, delay and skew after Env.Heal.
func (in *Injector) endNet() {
	in.mu.Lock()
	var ids []int
	for id, a := range in.active {
		if a.kind == FaultPartition || a.kind == FaultDelay || a.kind == FaultClockSkew {
			ids = append(ids, id)
		}
	}
	clear(in.cuts)
	in.mu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		in.end(id, nil)
	}
}

// activeIDs lists the active events of a kind on a name ("" matches all).
func (in *Injector) activeIDs(kind, name string) []int {
	in.mu.Lock()
	defer in.mu.Unlock()
	var ids []int
	for id, a := range in.active {
		if (kind == "" || a.kind == kind) && (name == "" || a.name == name) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// resolve maps a role to a name; who (from a When condition) answers
// client:holder.
func (in *Injector) resolve(name, who string) (string, error) {
	if !component.IsRole(name) {
		return name, nil
	}
	if name == component.HolderClient && who != "" {
		return who, nil
	}
	got, err := in.Env.Resolve(name)
	if err != nil {
		return "", fmt.Errorf("faults: resolve %s: %w", name, err)
	}
	return got, nil
}

// resolveStep resolves every name in s.
func (in *Injector) resolveStep(s Step, who string) (Step, error) {
	var errs []error
	one := func(p *string) {
		if *p == "" {
			return
		}
		got, err := in.resolve(*p, who)
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
	return s, errors.Join(errs...)
}
