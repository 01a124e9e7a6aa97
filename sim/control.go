package sim

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/faults"
)

// The sandbox implements faults.Env: every fault of a scenario, of the
// nemesis and of the web UI's buttons goes through these methods.
var _ faults.Env = (*Sandbox)(nil)

// Members lists the components a partition splits: etcd members, lock
// servers and balancers ("isolate X" cuts X from all the others; balancers
// only when X is one, see faults.CutsFor).
func (sb *Sandbox) Members() []string {
	out := component.Names(component.Etcd, len(sb.etcdURLs))
	sb.mu.Lock()
	for _, s := range sb.servers {
		out = append(out, s.name)
	}
	for _, b := range sb.lbs {
		out = append(out, b.name)
	}
	sb.mu.Unlock()
	return out
}

// Names lists every component: etcd members, lock servers, balancers and
// the clients.
func (sb *Sandbox) Names() []string {
	return append(sb.Members(), component.Names(component.Client, sb.cfg.Clients)...)
}

// Resolve turns a target (a name or a role such as etcd:leader) into a
// component name, now.
func (sb *Sandbox) Resolve(target string) (string, error) {
	switch target {
	case component.EtcdLeader:
		if sb.cluster == nil {
			return "", ErrExternal
		}
		if l, ok := sb.cluster.Leader(); ok {
			return l, nil
		}
		return "", fmt.Errorf("%w: no etcd leader right now", ErrNotRunning)
	case component.EtcdFollower:
		if sb.cluster == nil {
			return "", ErrExternal
		}
		l, _ := sb.cluster.Leader()
		for _, m := range sb.cluster.Status() {
			if m.Up && m.Name != l {
				return m.Name, nil
			}
		}
		return "", fmt.Errorf("%w: no running etcd follower", ErrNotRunning)
	case component.AnyLockServer:
		sb.mu.Lock()
		defer sb.mu.Unlock()
		for _, s := range sb.servers {
			if s.run != nil {
				return s.name, nil
			}
		}
		return "", fmt.Errorf("%w: no running lock server", ErrNotRunning)
	case component.MasterBalancer:
		return sb.resolveMaster()
	case component.HolderClient:
		for _, c := range sb.Clients() {
			if c.Believes {
				return c.Name, nil
			}
		}
		return "", fmt.Errorf("%w: no client holds a lock right now", ErrNotRunning)
	}
	if !slices.Contains(sb.Names(), target) {
		return "", fmt.Errorf("%w: %q", ErrUnknownNode, target)
	}
	return target, nil
}

// Crash stops a component abruptly: an etcd member (its data dir is kept),
// a lock server (listener and live connections closed; a process of
// Config.LockServerCmd is killed with SIGKILL) or a balancer (listener and
// live connections closed; in a group its adverts stop and its claim on the
// virtual address stays).
func (sb *Sandbox) Crash(name string) error {
	defer sb.triggers.releaseAll()
	switch component.KindOf(name) {
	case component.Etcd:
		if sb.cluster == nil {
			return ErrExternal
		}
		return sb.cluster.Crash(name)
	case component.LockServer:
		sb.mu.Lock()
		slot := sb.slot(name)
		if slot == nil {
			sb.mu.Unlock()
			return fmt.Errorf("%w: %q", ErrUnknownNode, name)
		}
		r := slot.run
		slot.run = nil
		sb.mu.Unlock()
		if r == nil {
			return fmt.Errorf("%w: %s", ErrNotRunning, name)
		}
		r.Resume()
		return r.Close()
	case component.Balancer:
		return sb.crashBalancer(name)
	}
	return fmt.Errorf("%w: cannot crash %q", ErrUnknownNode, name)
}

// Restart starts a crashed component again at the same address (an etcd
// member from its kept data dir; a lock server process by running its
// command again, against the same etcd proxies).
func (sb *Sandbox) Restart(ctx context.Context, name string) error {
	defer sb.triggers.releaseAll()
	switch component.KindOf(name) {
	case component.Etcd:
		if sb.cluster == nil {
			return ErrExternal
		}
		return sb.cluster.Restart(ctx, name)
	case component.LockServer:
		return sb.restartServer(ctx, name)
	case component.Balancer:
		return sb.restartBalancer(ctx, name)
	}
	return fmt.Errorf("%w: cannot restart %q", ErrUnknownNode, name)
}

// restartServer starts a crashed lock server again at its address. The
// sandbox's lock is not held while it starts (a process may take a moment);
// Close cancels a restart under way and waits for it.
func (sb *Sandbox) restartServer(ctx context.Context, name string) error {
	sb.mu.Lock()
	slot := sb.slot(name)
	switch {
	case sb.closed:
		sb.mu.Unlock()
		return ErrClosed
	case slot == nil:
		sb.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrUnknownNode, name)
	case slot.run != nil || slot.starting:
		sb.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrRunning, name)
	}
	slot.starting = true
	sb.restarting.Add(1)
	sb.mu.Unlock()
	defer sb.restarting.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer context.AfterFunc(sb.life, cancel)()
	defer cancel()
	r, _, err := sb.startServer(ctx, slot, slot.addr)
	sb.mu.Lock()
	defer sb.mu.Unlock()
	slot.starting = false
	if err != nil {
		return err
	}
	if sb.closed {
		_ = r.Close()
		return ErrClosed
	}
	slot.run, slot.paused = r, false
	return nil
}

func (sb *Sandbox) slot(name string) *serverSlot {
	for _, s := range sb.servers {
		if s.name == name {
			return s
		}
	}
	return nil
}

// Pause freezes a client, a lock server or a balancer: locksim's own lock
// server at its next checkpoint, a process of Config.LockServerCmd with
// SIGSTOP (a real process pause), one of Config.LockServerFunc by holding
// every byte into and out of it; a balancer's VRRP node stops advertising.
func (sb *Sandbox) Pause(name string) error { return sb.setPaused(name, true) }

// Resume undoes Pause.
func (sb *Sandbox) Resume(name string) error { return sb.setPaused(name, false) }

func (sb *Sandbox) setPaused(name string, paused bool) error {
	defer sb.triggers.releaseAll()
	switch component.KindOf(name) {
	case component.Client:
		c, err := sb.clientByName(name)
		if err != nil {
			return err
		}
		if paused {
			c.Pause()
		} else {
			c.Resume()
		}
		return nil
	case component.LockServer:
		sb.mu.Lock()
		defer sb.mu.Unlock()
		slot := sb.slot(name)
		if slot == nil {
			return fmt.Errorf("%w: %q", ErrUnknownNode, name)
		}
		slot.paused = paused
		if slot.run == nil {
			return fmt.Errorf("%w: %s", ErrNotRunning, name)
		}
		if paused {
			slot.run.Pause()
		} else {
			slot.run.Resume()
		}
		return nil
	case component.Balancer:
		return sb.pauseBalancer(name, paused)
	}
	return fmt.Errorf("%w: only clients, lock servers and balancers can be paused, not %q", ErrUnknownNode, name)
}

// Cut drops traffic from one component to another, one direction only. Links
// between etcd members are cut at the members' peer proxies (see
// cluster.Cut); every other link (client -> balancer -> lock server -> etcd
// member, and the VRRP adverts between balancers) in the sandbox's network
// emulator, where a cut link stalls like a black hole.
func (sb *Sandbox) Cut(from, to string) error {
	return sb.onLink(from, to, sb.cluster.Cut, sb.net.Block)
}

// Mend undoes one Cut.
func (sb *Sandbox) Mend(from, to string) error {
	return sb.onLink(from, to, sb.cluster.Mend, sb.net.Unblock)
}

// Delay adds latency (± jitter) to the link from one component to another.
func (sb *Sandbox) Delay(from, to string, latency, jitter time.Duration) error {
	return sb.onLink(from, to,
		func(from, to string) error {
			// One direction only, at the members' peer proxies.
			return sb.cluster.SetDelay(from, to, latency, jitter)
		},
		func(from, to string) { sb.net.SetDelay(from, to, latency, jitter) })
}

// onLink checks both names and acts on the link from -> to: through etcd's
// peer transport (members) between two members, else through the network
// emulator (emu).
func (sb *Sandbox) onLink(from, to string, members func(from, to string) error, emu func(from, to string)) error {
	defer sb.triggers.releaseAll()
	names := sb.Names()
	for _, n := range []string{from, to} {
		if !slices.Contains(names, n) {
			return fmt.Errorf("%w: %q", ErrUnknownNode, n)
		}
	}
	if component.KindOf(from) == component.Etcd && component.KindOf(to) == component.Etcd {
		if sb.cluster == nil {
			return ErrExternal
		}
		return members(from, to)
	}
	emu(from, to)
	return nil
}

// ClockSkew shifts a client's wall clock by d (it then misjudges expiresAt).
func (sb *Sandbox) ClockSkew(name string, d time.Duration) error {
	defer sb.triggers.releaseAll()
	c, err := sb.clientByName(name)
	if err != nil {
		return err
	}
	c.SetSkew(d)
	return nil
}

// Heal undoes every partition, cut, delay and clock skew (not crashes or pauses).
func (sb *Sandbox) Heal() error {
	defer sb.triggers.releaseAll()
	sb.net.Heal()
	sb.mu.Lock()
	for _, c := range sb.clients {
		c.SetSkew(0)
	}
	sb.mu.Unlock()
	if sb.cluster != nil {
		return sb.cluster.Heal()
	}
	return nil
}

// Wait blocks until a client enters the condition's phase (Holder a client
// name, or "client:holder" for any client), then holds that client
// at the phase until the next fault has been applied (at most 2 s). It
// returns the client that matched.
func (sb *Sandbox) Wait(ctx context.Context, cond faults.Condition) (string, error) {
	holder := cond.Holder
	if holder == component.HolderClient {
		holder = ""
	}
	if cond.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cond.Timeout)
		defer cancel()
	}
	t := sb.triggers.arm(holder, cond.Phase)
	select {
	case who := <-t.hit:
		return who, nil
	case <-ctx.Done():
		sb.triggers.disarm(t)
		select { // it may have matched just now
		case who := <-t.hit:
			return who, nil
		default:
		}
		return "", fmt.Errorf("sim: no client reached %q: %w", cond.Phase, ctx.Err())
	}
}
