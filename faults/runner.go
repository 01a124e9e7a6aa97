package faults

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Runner fires Steps at their times through an Injector and undoes each
// fault that has a For (or a crash's RestartAfter) that long after it fired.
// Set the exported fields, then call Run once and HealAll once after it.
type Runner struct {
	Steps []Step
	// Injector applies the steps and keeps the event log. Nil: a new one
	// over Env, with the Runner's Clock and Start.
	Injector *Injector
	Env      Env   // used only when Injector is nil
	Clock    Clock // the schedule's clock; nil: RealClock
	// Start is the base of At; zero: the moment Run is called.
	Start time.Time
	// OnFire, optional, is called on Run's goroutine after each step fired
	// (or failed), with its event. To follow every event, undos included,
	// subscribe to the Injector.
	OnFire func(Event)
	// WaitTimeout bounds a When condition that has no Timeout; default 30s.
	WaitTimeout time.Duration

	once  sync.Once
	mu    sync.Mutex
	undos []undo
	seq   int
}

type undo struct {
	at   time.Duration // on the Runner's clock
	seq  int
	evID int
}

type condResult struct {
	who string
	err error
}

func (r *Runner) init() {
	r.once.Do(func() {
		if r.Clock == nil {
			r.Clock = RealClock{}
		}
		if r.WaitTimeout <= 0 {
			r.WaitTimeout = 30 * time.Second
		}
		if r.Start.IsZero() {
			r.Start = r.Clock.Now()
		}
		if r.Injector == nil {
			r.Injector = &Injector{Env: r.Env, Clock: r.Clock, Start: r.Start}
		}
		r.Injector.init()
	})
}

func (r *Runner) since() time.Duration { return r.Clock.Now().Sub(r.Start) }

// Run applies the steps in order of At (file order on ties). A step fires
// at its At, but never before the previous step fired; a step with When
// first waits (after At) until the condition holds, bounded by its Timeout —
// undos keep running meanwhile. Roles are resolved when the step fires.
// Faults with For/RestartAfter are undone that long after they fired. A step
// that fails (bad target, Env error, condition timeout) becomes an Event with
// Error set; Run goes on.
//
// Run returns the Injector's events once all steps fired and all scheduled
// undos ran (nil error), or when ctx ends (ctx's error; faults may still be
// active: call HealAll).
//
// Run is one loop around one select, kept whole so that every wake-up — an
// undo or a step coming due, a condition holding or timing out — is decided
// in one place, in one order.
func (r *Runner) Run(ctx context.Context) ([]Event, error) {
	r.init()
	steps := slices.Clone(r.Steps)
	slices.SortStableFunc(steps, func(a, b Step) int { return cmp.Compare(a.At, b.At) })
	var (
		next      int
		condCh    chan condResult
		condStop  context.CancelFunc
		condWait  time.Duration
		condTimer <-chan time.Time
	)
	stopCond := func() {
		if condCh != nil {
			condStop()
			<-condCh
			condCh = nil
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			stopCond()
			return r.Events(), err
		}
		now := r.since()
		if u, ok := r.dueUndo(now); ok {
			r.Injector.Undo(ctx, u.evID)
			continue
		}
		if condCh == nil && next < len(steps) && steps[next].At <= now {
			s := steps[next]
			if s.When == nil {
				r.fire(ctx, s, "")
				next++
				continue
			}
			timeout := s.When.Timeout
			if timeout <= 0 {
				timeout = r.WaitTimeout
			}
			condCh, condStop = r.startWait(ctx, *s.When)
			condWait = timeout
			condTimer = r.Clock.After(timeout)
			continue
		}
		r.mu.Lock()
		done := next == len(steps) && condCh == nil && len(r.undos) == 0
		wait := time.Duration(-1)
		if len(r.undos) > 0 {
			wait = r.undos[0].at - now
		}
		r.mu.Unlock()
		if done {
			return r.Events(), nil
		}
		if condCh == nil && next < len(steps) {
			if d := steps[next].At - now; wait < 0 || d < wait {
				wait = d
			}
		}
		var timer <-chan time.Time
		if wait >= 0 {
			timer = r.Clock.After(wait)
		}
		select {
		case <-ctx.Done():
		case <-timer:
		case <-condTimer:
			condTimer = nil
			condStop()
			res := <-condCh
			condCh = nil
			if res.err == nil { // it held just as the timeout struck
				r.fire(ctx, steps[next], res.who)
			} else {
				r.failed(steps[next], fmt.Errorf("%w: %+v within %v", ErrConditionTimeout, *steps[next].When, condWait))
			}
			next++
		case res := <-condCh:
			condCh, condTimer = nil, nil
			condStop()
			if res.err != nil {
				r.failed(steps[next], fmt.Errorf("faults: waiting for %+v: %w", *steps[next].When, res.err))
			} else {
				r.fire(ctx, steps[next], res.who)
			}
			next++
		}
	}
}

// fire applies s through the Injector and schedules its undo.
func (r *Runner) fire(ctx context.Context, s Step, who string) {
	at := r.since()
	id, _ := r.Injector.fire(ctx, s, who)
	if d := s.Span(); d > 0 && r.Injector.Active(id) {
		r.schedule(id, at+d)
	}
	r.fired(id)
}

func (r *Runner) failed(s Step, err error) {
	r.fired(r.Injector.failed(s, err))
}

func (r *Runner) fired(id int) {
	if r.OnFire != nil {
		r.OnFire(r.Injector.event(id))
	}
}

// startWait runs Env.Wait on its own goroutine; cancel stops it, the
// channel gets its result.
func (r *Runner) startWait(ctx context.Context, c Condition) (chan condResult, context.CancelFunc) {
	wctx, cancel := context.WithCancel(ctx)
	ch := make(chan condResult, 1)
	go func() {
		who, err := r.Injector.Env.Wait(wctx, c)
		ch <- condResult{who, err}
	}()
	return ch, cancel
}

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

func (r *Runner) schedule(evID int, at time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	r.undos = append(r.undos, undo{at: at, seq: r.seq, evID: evID})
	slices.SortFunc(r.undos, func(a, b undo) int {
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
		}
		return a.seq - b.seq
	})
}

// HealAll undoes every fault still in effect (the Injector's HealAll, with
// source "final"). Call it after Run returned.
func (r *Runner) HealAll(ctx context.Context) {
	r.init()
	r.mu.Lock()
	r.undos = nil
	r.mu.Unlock()
	_ = r.Injector.HealAll(ctx, "final", "heal every remaining fault")
}

// Events returns a copy of every event of the Injector so far, in ID order.
func (r *Runner) Events() []Event {
	r.init()
	return r.Injector.Events()
}
