package faults

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Clock is the time source of a Runner.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock (fake inside a testing/synctest bubble).
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Env is what a Runner needs from the sandbox; sim implements it over the real components.
// Names are component names: etcd-N, lockserver-N, client-N, balancer. Every method but Wait
// must return promptly (Restart within ctx): the Runner calls them from its one goroutine.
type Env interface {
	// Resolve maps a role ("etcd:leader", "etcd:follower", "lockserver:any", "client:holder") to
	// a name. The Runner calls it only for targets containing ':', when the step fires.
	Resolve(target string) (string, error)
	// Members lists every component a partition may involve (etcd members and lock servers):
	// "isolate X" cuts X from all the others.
	Members() []string

	Crash(name string) error
	Restart(ctx context.Context, name string) error
	Pause(name string) error
	Resume(name string) error

	// Cut stops traffic from -> to (one direction); Mend undoes one Cut. Partitions are applied as
	// sets of cuts (see CutsFor); the Runner counts overlapping cuts and mends a link only when
	// no active partition still needs it.
	Cut(from, to string) error
	Mend(from, to string) error
	// Delay slows from -> to; latency and jitter 0 remove the delay.
	Delay(from, to string, latency, jitter time.Duration) error
	// ClockSkew offsets a client's clock by d (0 restores it).
	ClockSkew(client string, d time.Duration) error
	// Heal undoes every cut, delay and skew (not crashes or pauses), also those not made by the Runner.
	Heal() error
	// Wait blocks until c holds and returns who satisfied it (for example the holder), or returns
	// ctx's error. It must return promptly once ctx is done.
	Wait(ctx context.Context, c Condition) (string, error)
}

// Event is one applied (or failed) fault. Times are offsets from the Runner's Start.
type Event struct {
	ID       int           `json:"id"`
	Fault    string        `json:"fault"`
	Target   string        `json:"target"`   // as written: "etcd:leader", "isolate etcd:leader", "lockserver-1<->etcd-2"
	Resolved string        `json:"resolved"` // who was hit: "etcd-2", "[etcd-2] | [etcd-1 etcd-3 lockserver-1]"
	Start    time.Duration `json:"startNs"`
	End      time.Duration `json:"endNs"`  // 0 while Active
	Active   bool          `json:"active"` // the fault is still in effect
	Note     string        `json:"note,omitempty"`
	Source   string        `json:"source,omitempty"`
	Error    string        `json:"error,omitempty"` // non-empty when applying (or undoing) the fault failed
}

// Runner applies Steps at their times. Set the exported fields, then call Run once and
// HealAll once after it.
type Runner struct {
	Steps   []Step
	Env     Env
	Clock   Clock       // nil: RealClock
	OnEvent func(Event) // optional; called on the Run goroutine when an event starts and ends

	// Start is the base of At and of Event times; zero: the moment Run is called.
	Start time.Time
	// WaitTimeout bounds a When condition that has no Timeout; default 30s.
	WaitTimeout time.Duration

	mu     sync.Mutex
	events []Event
	active map[int]*activeFault // by event ID
	cuts   map[Link]int         // overlapping cuts, by link
	undos  []undo
	seq    int
}

type activeFault struct {
	kind   string // crash, pause, partition, delay, clock-skew
	name   string // crash, pause, clock-skew
	cuts   []Link // partition
	delays []Link // delay
}

type undo struct {
	at   time.Duration
	seq  int
	evID int
}

type condResult struct {
	who string
	err error
}

// Run applies the steps in order of At (file order on ties). A step fires at its At, but never
// before the previous step fired; a step with When first waits (after At) until the condition
// holds, bounded by its Timeout — undos keep running meanwhile. Roles are resolved when the step
// fires. Faults with For/RestartAfter are undone that long after they fired. A step that fails
// (bad target, Env error, condition timeout) becomes an Event with Error set; Run goes on.
//
// Run returns every event once all steps fired and all scheduled undos ran (nil error), or when
// ctx ends (ctx's error; faults may still be active: call HealAll).
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
			r.undo(ctx, u.evID)
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

// startWait runs Env.Wait on its own goroutine; cancel stops it, the channel gets its result.
func (r *Runner) startWait(ctx context.Context, c Condition) (chan condResult, context.CancelFunc) {
	wctx, cancel := context.WithCancel(ctx)
	ch := make(chan condResult, 1)
	go func() {
		who, err := r.Env.Wait(wctx, c)
		ch <- condResult{who, err}
	}()
	return ch, cancel
}

// HealAll undoes every fault still active: restarts crashed components, resumes paused ones and
// heals the network (Env.Heal), then records a "heal" event. Call it after Run returned.
func (r *Runner) HealAll(ctx context.Context) {
	r.init()
	r.mu.Lock()
	ids := make([]int, 0, len(r.active))
	for id := range r.active {
		ids = append(ids, id)
	}
	r.undos = nil
	r.mu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		r.mu.Lock()
		kind := r.active[id].kind
		r.mu.Unlock()
		if kind == FaultCrash || kind == FaultPause {
			r.undo(ctx, id)
		}
	}
	ev := r.begin(Step{Fault: FaultHeal, Source: "final", Note: "heal every remaining fault"}, "", "")
	err := r.Env.Heal()
	r.endNet()
	r.end(ev, err)
}

// Events returns a copy of every event so far, in ID order.
func (r *Runner) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *Runner) init() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active != nil {
		return
	}
	if r.Clock == nil {
		r.Clock = RealClock{}
	}
	if r.WaitTimeout <= 0 {
		r.WaitTimeout = 30 * time.Second
	}
	if r.Start.IsZero() {
		r.Start = r.Clock.Now()
	}
	r.active = map[int]*activeFault{}
	r.cuts = map[Link]int{}
}

func (r *Runner) since() time.Duration { return r.Clock.Now().Sub(r.Start) }
