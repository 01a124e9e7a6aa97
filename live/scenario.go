package live

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/scenarios"
	"github.com/locksim/locksim/web"
)

// A scenario started from the page runs its fault steps against the live
// sandbox: its topology, workload, lock TTL, Raft timing, fencing and
// variants are ignored (the sandbox's own apply; fencing is the page's
// toggle). Its steps' times count from the moment it is started. In step
// mode the scenario's clock stops just before each step until the page
// says continue; faults already in effect stay in effect meanwhile.

// ErrNoStep is returned by continue when no scenario step is waiting.
var ErrNoStep = errors.New("sim: no scenario step is waiting to continue")

type scenarioRun struct {
	mu       sync.Mutex
	stepMode bool
	state    *web.ScenarioState
	clock    *stepClock
	cancel   context.CancelFunc
	done     chan struct{}
}

func (w *View) scenarioState() *web.ScenarioState {
	s := &w.scen
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == nil {
		return nil
	}
	st := *s.state
	if s.clock != nil && st.Running {
		st.WaitingToContinue = s.clock.waiting()
	}
	return &st
}

func (w *View) setStepMode(on bool) {
	s := &w.scen
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stepMode = on
	if s.clock != nil {
		s.clock.setStepMode(on)
	}
}

func (w *View) continueStep() error {
	s := &w.scen
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clock == nil || !s.clock.release() {
		return ErrNoStep
	}
	return nil
}

// startScenario loads a scenario (catalogue name or uploaded YAML), stops
// the one the page started before, if any (undoing its faults), and runs the
// new one's fault steps on the live sandbox in the background.
func (w *View) startScenario(c web.Command) error {
	var sc *scenarios.Scenario
	var err error
	if c.YAML != "" {
		sc, err = scenarios.Parse("uploaded.yaml", []byte(c.YAML))
	} else {
		sc, err = scenarios.Load(c.Scenario)
	}
	if err != nil {
		return err
	}
	steps := sc.Plan(sc.Seed)
	if err := w.fits(sc, steps); err != nil {
		return err
	}
	ats := make([]time.Duration, len(steps))
	for i, st := range steps {
		ats[i] = st.At
	}

	s := &w.scen
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}

	w.mu.Lock()
	parent := w.ctx
	w.mu.Unlock()
	rctx, rcancel := context.WithCancel(parent)

	s.mu.Lock()
	clk := newStepClock(time.Now, ats, s.stepMode)
	s.clock = clk
	s.state = &web.ScenarioState{Name: sc.Name, Description: sc.Description, Steps: len(steps), Running: true}
	done = make(chan struct{})
	s.done, s.cancel = done, rcancel
	s.mu.Unlock()

	err = w.background(func(context.Context) {
		defer close(done)
		defer clk.stop()
		defer rcancel()
		w.runScenario(rctx, sc, steps, clk)
	})
	if err != nil {
		rcancel()
		close(done)
		return err
	}
	return nil
}

// fits checks the steps against the live sandbox's topology (the
// scenario's own is ignored): a step that names balancer-2 in a sandbox
// with one balancer is refused before anything runs.
func (w *View) fits(sc *scenarios.Scenario, steps []faults.Step) error {
	cfg := w.sb.Config()
	top := faults.Topology{component.Etcd: cfg.Members, component.LockServer: cfg.LockServers,
		component.Client: cfg.Clients, component.Balancer: cfg.Balancers}
	for _, st := range steps {
		if probs := st.Check(top); len(probs) > 0 {
			hint := ""
			if sc.Topology.Balancers > 1 && cfg.Balancers < 2 {
				hint = fmt.Sprintf("; start the sandbox with --balancers %d, or run it with locksim run --ui", sc.Topology.Balancers)
			}
			return fmt.Errorf("%w: scenario %s does not fit this sandbox: %s: %s%s", web.ErrBadCommand, sc.Name, st.Source, probs[0].Msg, hint)
		}
	}
	return nil
}

// runScenario fires the scenario's steps on its (stoppable) clock through the
// sandbox's fault injector, so its faults land in the sandbox's one event
// log with the sandbox's times, next to the buttons' and any other's.
func (w *View) runScenario(ctx context.Context, sc *scenarios.Scenario, steps []faults.Step, clk *stepClock) {
	s := &w.scen
	fired := 0
	runner := &faults.Runner{Steps: steps, Injector: w.sb.Faults(), Clock: clk, Start: clk.epoch,
		OnFire: func(ev faults.Event) {
			fired++
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.state != nil && s.clock == clk {
				s.state.Step = min(fired, s.state.Steps)
				if ev.Note != "" {
					s.state.Note = ev.Note
				}
			}
		}}
	_, err := runner.Run(ctx)
	if err != nil || sc.Final == scenarios.FinalHeal {
		// Stopped early (another scenario, or Close) or asked to heal:
		// undo every fault still in effect.
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		runner.HealAll(hctx)
		cancel()
	}
	s.mu.Lock()
	if s.clock == clk && s.state != nil {
		s.state.Running = false
		s.state.WaitingToContinue = false
		if err == nil && s.state.Note == "" {
			s.state.Note = "finished"
		}
	}
	s.mu.Unlock()
}

// stepClock is a faults.Clock whose time can stop just before each step of
// a scenario until release is called (step mode). Time outside step mode is
// the wall clock since epoch, minus the time spent stopped.
type stepClock struct {
	now   func() time.Time
	epoch time.Time
	ats   []time.Duration // the steps' times, sorted

	mu       sync.Mutex
	stepMode bool
	next     int           // index of the step the clock stops before
	lag      time.Duration // time spent stopped
	floor    time.Duration // the clock never goes below this (monotonic)
	wake     chan struct{} // closed and replaced when the stop moves
	done     chan struct{}
	stopped  bool
	wg       sync.WaitGroup
}

func newStepClock(now func() time.Time, ats []time.Duration, stepMode bool) *stepClock {
	c := &stepClock{now: now, epoch: now(), ats: ats, wake: make(chan struct{}), done: make(chan struct{})}
	c.setStepMode(stepMode)
	return c
}

// elapsed is the clock's time since epoch and whether it is stopped at a
// step. Call with mu held.
func (c *stepClock) elapsed() (time.Duration, bool) {
	v := c.now().Sub(c.epoch) - c.lag
	v = max(v, c.floor)
	if c.stepMode && c.next < len(c.ats) {
		limit := max(c.ats[c.next]-1, c.floor)
		if v >= limit {
			return limit, true
		}
	}
	return v, false
}

// settle makes the current (possibly stopped) time the base from which the
// clock runs on. Call with mu held.
func (c *stepClock) settle() {
	v, _ := c.elapsed()
	raw := c.now().Sub(c.epoch) - c.lag
	if raw > v {
		c.lag += raw - v
	}
	c.floor = v
	close(c.wake)
	c.wake = make(chan struct{})
}

// Now is the scenario's time.
func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, _ := c.elapsed()
	return c.epoch.Add(v)
}

// After fires once the scenario's time has advanced by d.
func (c *stepClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	v, _ := c.elapsed()
	target := v + d
	if c.stopped {
		c.mu.Unlock()
		return ch // never fires: the scenario is over
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		for {
			c.mu.Lock()
			v, halted := c.elapsed()
			wake, done := c.wake, c.done
			c.mu.Unlock()
			if v >= target {
				ch <- c.epoch.Add(v)
				return
			}
			var t *time.Timer
			var timer <-chan time.Time
			if !halted {
				t = time.NewTimer(target - v)
				timer = t.C
			}
			select {
			case <-timer:
			case <-wake:
			case <-done:
			}
			if t != nil {
				t.Stop()
			}
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	return ch
}

// waiting reports whether the clock is stopped before a step.
func (c *stepClock) waiting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, halted := c.elapsed()
	return halted
}

// release lets the step the clock stopped before fire and stops before the
// following one. It reports whether the clock was stopped.
func (c *stepClock) release() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, halted := c.elapsed()
	if !halted {
		return false
	}
	c.settle()
	c.next++
	return true
}

// setStepMode turns stopping before each step on or off. Turned on, the
// clock stops before the first step that has not come due yet.
func (c *stepClock) setStepMode(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settle()
	c.stepMode = on
	if on {
		v := c.floor
		c.next = len(c.ats)
		for i, at := range c.ats {
			if at > v {
				c.next = i
				break
			}
		}
	}
}

// stop ends every pending After and waits for their goroutines.
func (c *stepClock) stop() {
	c.mu.Lock()
	if !c.stopped {
		c.stopped = true
		close(c.done)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

var _ faults.Clock = (*stepClock)(nil)
