package live

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/scenarios"
	"github.com/locksim/locksim/web"
)

// The page's fault buttons are steps fired now: Do turns each into a
// faults.Step and applies it through the sandbox's fault injector, the same
// one a scenario's steps and the nemesis go through. So a fault clicked in
// the page looks and is undone like any other, and shows on the timeline from
// the injector's one event log.

// stepOf turns a fault action of the page into the step it fires now; ok is
// false for actions that are not faults.
func stepOf(c web.Command) (st faults.Step, ok bool) {
	st = faults.Step{Fault: c.Action, Source: "web"}
	switch c.Action {
	case faults.FaultCrash, faults.FaultRestart, faults.FaultPause, faults.FaultResume:
		st.Target = c.Target
	case faults.FaultPartition:
		st.Groups = c.Groups
	default:
		return faults.Step{}, false
	}
	return st, true
}

// background runs f on a goroutine that Close waits for, under Start's
// context.
func (w *View) background(f func(ctx context.Context)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	ctx := w.ctx
	w.wg.Go(func() { f(ctx) })
	return nil
}

// Do carries out one command of the page. Crashing or restarting an etcd
// member takes about a second, so those run in the background: Do returns at
// once and the outcome shows in the frames (a failure as a fault with an
// error).
func (w *View) Do(ctx context.Context, c web.Command) error {
	if err := c.Validate(); err != nil {
		return err
	}
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if st, ok := stepOf(c); ok {
		return w.apply(ctx, st)
	}
	switch c.Action {
	case web.ActionHeal:
		return w.sb.Faults().HealAll(ctx, "web", "heal every fault")
	case web.ActionFencing:
		w.sb.Resource().SetFencing(c.Value)
		return nil
	case web.ActionRunScenario:
		return w.startScenario(c)
	case web.ActionContinue:
		return w.continueStep()
	case web.ActionStepMode:
		w.setStepMode(c.Value)
		return nil
	}
	return fmt.Errorf("%w: unknown action %q", web.ErrBadCommand, c.Action)
}

// apply fires one fault now; an etcd member's crash or restart in the
// background.
func (w *View) apply(ctx context.Context, st faults.Step) error {
	if err := st.Validate(); err != nil {
		return fmt.Errorf("%w: %v", web.ErrBadCommand, err)
	}
	inj := w.sb.Faults()
	slow := (st.Fault == faults.FaultCrash || st.Fault == faults.FaultRestart) &&
		strings.HasPrefix(st.Target, component.Etcd)
	if slow {
		return w.background(func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			_, _ = inj.Apply(ctx, st) // a failure shows as a fault with an error
		})
	}
	_, err := inj.Apply(ctx, st)
	return err
}

// Scenarios lists the catalogue for the page's picker.
func (w *View) Scenarios() []web.ScenarioInfo { return Scenarios() }

// Scenarios lists the scenario catalogue for the page's picker.
func Scenarios() []web.ScenarioInfo {
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

// Export is the package's Export with the topology of this view's sandbox
// (lock servers, clients, balancers and their election), so that steps that
// name balancer-N or lockserver-5 stay valid in the file, and the command
// line of lock servers that run as processes (lockServers.command), so that
// the file replays against the same implementation.
func (w *View) Export(name string, cmds []web.TimedCommand) []byte {
	cfg := w.sb.Config()
	return export(name, cmds, func(sc *scenarios.Scenario) {
		sc.Topology.LockServers, sc.Topology.Clients = cfg.LockServers, max(cfg.Clients, 1)
		sc.Topology.Balancers, sc.Topology.Balancer = cfg.Balancers, cfg.Policy
		sc.LockServers.Command = cfg.LockServerCmd
		if cfg.Balancers > 1 {
			sc.VRRP = scenarios.VRRP{AdvertInterval: cfg.AdvertInterval, NoPreempt: cfg.NoPreempt}
		}
	})
}

// Export turns the commands carried out in the page into a scenario file:
// every fault becomes a step at the time it was clicked (since the sandbox
// started), written by the scenario format's own encoder; the other actions
// (fencing, scenario runs, step mode) are told in the description. The
// scenario lasts five seconds past its last command and ends healed. Its
// topology is the default one (View.Export writes the sandbox's).
func Export(name string, cmds []web.TimedCommand) []byte { return export(name, cmds, nil) }

// export builds the scenario of Export; setup, if any, adjusts its sandbox.
func export(name string, cmds []web.TimedCommand, setup func(*scenarios.Scenario)) []byte {
	if name == "" {
		name = "recorded"
	}
	sc := &scenarios.Scenario{
		Name: name, Seed: scenarios.DefaultSeed, Fencing: true, Final: scenarios.FinalHeal,
		Topology: scenarios.Topology{Etcd: scenarios.DefaultEtcd, LockServers: scenarios.DefaultLockServers,
			Clients: scenarios.DefaultClients, Balancers: scenarios.DefaultBalancers, Balancer: scenarios.DefaultBalancer},
		Lock: scenarios.Lock{TTL: scenarios.DefaultTTL, Wait: scenarios.DefaultWait},
		Workload: scenarios.Workload{Resources: []string{scenarios.DefaultResource},
			Hold: scenarios.DefaultHold, Think: scenarios.DefaultThink},
		Raft:   scenarios.Raft{TickMs: scenarios.DefaultTickMs, ElectionMs: scenarios.DefaultElectionMs},
		Expect: map[string]scenarios.Expect{},
	}
	if setup != nil {
		setup(sc)
	}
	desc := []string{"Recorded from the locksim web visualizer."}
	var last time.Duration
	for _, c := range cmds {
		at := max(c.At.Round(time.Millisecond), 0)
		last = max(last, at)
		if st, ok := stepOf(c.Command); ok {
			st.At, st.Source = at, ""
			sc.Steps = append(sc.Steps, st)
			continue
		}
		if c.Action == web.ActionHeal {
			sc.Steps = append(sc.Steps, faults.Step{At: at, Fault: faults.FaultHeal})
			continue
		}
		desc = append(desc, fmt.Sprintf("At %s: %s.", at, describe(c.Command)))
	}
	sc.Description = strings.Join(desc, " ")
	sc.Duration = (last + 5*time.Second).Truncate(time.Second)
	return scenarios.Encode(sc)
}

func describe(c web.Command) string {
	switch c.Action {
	case web.ActionFencing:
		if c.Value {
			return "fencing turned on"
		}
		return "fencing turned off"
	case web.ActionStepMode:
		if c.Value {
			return "step mode on"
		}
		return "step mode off"
	case web.ActionRunScenario:
		if c.Scenario == "" {
			return "ran a scenario from YAML"
		}
		return "ran scenario " + strings.Join(strings.Fields(c.Scenario), " ")
	}
	return strings.Join(strings.Fields(c.Action), " ")
}
