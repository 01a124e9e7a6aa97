package sim

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/scenarios"
	"github.com/locksim/locksim/web"
)

// Fault events of the page's own buttons get ids from here on, so that they
// never collide with a scenario runner's (see scenarioIDBase).
const controlIDBase = 1 << 30

// controlState tracks the faults the page's buttons are holding, so that the
// timeline can shade them until they are undone.
type controlState struct {
	mu     sync.Mutex
	nextID int
	active map[string]int // "crash etcd-1", "pause client-2", "partition" -> event id
	starts map[int]faults.Event
}

// beginFault publishes a fault event the page started.
func (w *Web) beginFault(key, fault, target, resolved string) int {
	c := &w.ctl
	c.mu.Lock()
	c.nextID++
	id := controlIDBase + c.nextID
	ev := faults.Event{ID: id, Fault: fault, Target: target, Resolved: resolved, Start: w.sb.now(), Active: true, Source: "web"}
	if c.starts == nil {
		c.starts = map[int]faults.Event{}
	}
	c.starts[id] = ev
	if key != "" {
		c.active[key] = id
	}
	c.mu.Unlock()
	w.sb.publishEvent(ev)
	return id
}

// endFault marks a fault event of the page as over (with err, if applying
// or undoing it failed).
func (w *Web) endFault(id int, err error) {
	c := &w.ctl
	c.mu.Lock()
	ev, ok := c.starts[id]
	delete(c.starts, id)
	for k, v := range c.active {
		if v == id {
			delete(c.active, k)
		}
	}
	c.mu.Unlock()
	if !ok {
		return
	}
	ev.Active, ev.End = false, w.sb.now()
	if err != nil {
		ev.Error = err.Error()
	}
	w.sb.publishEvent(ev)
}

// endKey ends the page's active fault under key, if any.
func (w *Web) endKey(key string) {
	w.ctl.mu.Lock()
	id, ok := w.ctl.active[key]
	w.ctl.mu.Unlock()
	if ok {
		w.endFault(id, nil)
	}
}

// background runs f on a goroutine that Close waits for, under Start's
// context.
func (w *Web) background(f func(ctx context.Context)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrWebClosed
	}
	ctx := w.ctx
	w.wg.Go(func() { f(ctx) })
	return nil
}

// Do carries out one command of the page. Crashing or restarting an etcd
// member takes about a second, so those run in the background: Do returns at
// once and the outcome shows in the frames (a failure as a fault with an
// error).
func (w *Web) Do(ctx context.Context, c web.Command) error {
	if err := c.Validate(); err != nil {
		return err
	}
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return ErrWebClosed
	}
	sb := w.sb
	switch c.Action {
	case web.ActionCrash:
		name, err := sb.Resolve(c.Target)
		if err != nil {
			return err
		}
		if kindOf(name) == "client" {
			return fmt.Errorf("%w: clients are paused, not crashed: %q", ErrUnknownNode, name)
		}
		id := w.beginFault("crash "+name, faults.FaultCrash, c.Target, name)
		if kindOf(name) == "etcd" {
			return w.background(func(context.Context) { w.failed(id, sb.Crash(name)) })
		}
		err = sb.Crash(name)
		w.failed(id, err)
		return err
	case web.ActionRestart:
		name, err := sb.Resolve(c.Target)
		if err != nil {
			return err
		}
		restart := func(ctx context.Context) error {
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			err := sb.Restart(rctx, name)
			if err == nil {
				w.endKey("crash " + name)
			}
			return err
		}
		if kindOf(name) == "etcd" {
			return w.background(func(ctx context.Context) {
				if err := restart(ctx); err != nil {
					w.endFault(w.beginFault("", faults.FaultRestart, c.Target, name), err)
				}
			})
		}
		return restart(ctx)
	case web.ActionPause, web.ActionResume:
		name, err := sb.Resolve(c.Target)
		if err != nil {
			return err
		}
		if c.Action == web.ActionResume {
			if err := sb.Resume(name); err != nil {
				return err
			}
			w.endKey("pause " + name)
			return nil
		}
		if err := sb.Pause(name); err != nil {
			return err
		}
		w.endKey("pause " + name)
		w.beginFault("pause "+name, faults.FaultPause, c.Target, name)
		return nil
	case web.ActionPartition:
		return w.partition(c.Groups)
	case web.ActionHeal:
		return w.heal()
	case web.ActionFencing:
		sb.resource.SetFencing(c.Value)
		return nil
	case web.ActionRunScenario:
		return w.startScenario(c)
	case web.ActionContinue:
		return w.continueStep()
	case web.ActionStepMode:
		w.setStepMode(c.Value)
		return nil
	}
	return fmt.Errorf("%w: %q", web.ErrBadCommand, c.Action)
}

// failed ends a fault event that could not be applied; a fault that was
// applied stays active.
func (w *Web) failed(id int, err error) {
	if err != nil {
		w.endFault(id, err)
	}
}

// partition cuts every link between nodes of different groups, both ways.
func (w *Web) partition(groups [][]string) error {
	names := w.sb.Names()
	for _, g := range groups {
		for _, n := range g {
			if !slices.Contains(names, n) {
				return fmt.Errorf("%w: %q", ErrUnknownNode, n)
			}
		}
	}
	id := w.beginFault(fmt.Sprintf("partition %d", w.seqNow()), faults.FaultPartition, "groups", groupsLabel(groups))
	for _, l := range partitionCuts(groups) {
		if err := w.sb.Cut(l[0], l[1]); err != nil {
			w.endFault(id, err)
			return err
		}
	}
	return nil
}

func (w *Web) seqNow() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq
}

// heal undoes every partition, delay and skew, resumes every paused client
// and lock server, and restarts every crashed component (members in the
// background).
func (w *Web) heal() error {
	sb := w.sb
	err := sb.Heal()
	for _, c := range sb.Clients() {
		if c.Paused {
			err = errJoin(err, sb.Resume(c.Name))
		}
	}
	sb.mu.Lock()
	var crashed, paused []string
	for _, s := range sb.servers {
		switch {
		case s.server == nil:
			crashed = append(crashed, s.name)
		case s.paused:
			paused = append(paused, s.name)
		}
	}
	if sb.balancer == nil {
		crashed = append(crashed, "balancer")
	}
	sb.mu.Unlock()
	for _, n := range paused {
		err = errJoin(err, sb.Resume(n))
	}
	for _, n := range crashed {
		rerr := sb.Restart(w.ctx, n)
		if rerr == nil {
			w.endKey("crash " + n)
		}
		err = errJoin(err, rerr)
	}
	if sb.cluster != nil {
		for _, m := range sb.cluster.Status() {
			if !m.Up {
				name := m.Name
				berr := w.background(func(ctx context.Context) {
					rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					if rerr := sb.Restart(rctx, name); rerr == nil {
						w.endKey("crash " + name)
					}
				})
				err = errJoin(err, berr)
			}
		}
	}
	// Every fault the buttons made is over now (a member restarting in the
	// background ends its crash when it is up).
	w.ctl.mu.Lock()
	var keys []string
	for k := range w.ctl.active {
		if !strings.HasPrefix(k, "crash etcd-") {
			keys = append(keys, k)
		}
	}
	w.ctl.mu.Unlock()
	for _, k := range keys {
		w.endKey(k)
	}
	return err
}

func errJoin(a, b error) error {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return fmt.Errorf("%w; %w", a, b)
}

// Scenarios lists the catalogue for the page's picker.
func (w *Web) Scenarios() []web.ScenarioInfo { return WebScenarios() }

// WebScenarios lists the scenario catalogue for the page's picker.
func WebScenarios() []web.ScenarioInfo {
	var out []web.ScenarioInfo
	for _, n := range scenarios.Names() {
		info := web.ScenarioInfo{Name: n}
		if sc, err := scenarios.Load(n); err == nil {
			info.Description = sc.Description
		}
		out = append(out, info)
	}
	return out
}
