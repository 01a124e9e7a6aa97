package sim

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/locksim/locksim/faults"
)

// The sandbox implements faults.Env: every fault of a scenario, of the
// nemesis and of the web UI's buttons goes through these methods.
var _ faults.Env = (*Sandbox)(nil)

func kindOf(name string) string {
	switch {
	case strings.HasPrefix(name, "etcd-"):
		return "etcd"
	case strings.HasPrefix(name, "lockserver-"):
		return "lockserver"
	case strings.HasPrefix(name, "client-"):
		return "client"
	case name == "balancer":
		return "balancer"
	}
	return ""
}

// Members lists the components a partition splits: etcd members and lock
// servers ("isolate X" cuts X from all the others).
func (sb *Sandbox) Members() []string {
	var out []string
	for i := range sb.etcdURLs {
		out = append(out, fmt.Sprintf("etcd-%d", i+1))
	}
	sb.mu.Lock()
	for _, s := range sb.servers {
		out = append(out, s.name)
	}
	sb.mu.Unlock()
	return out
}

// Names lists every component: etcd members, lock servers, the balancer and
// the clients.
func (sb *Sandbox) Names() []string {
	out := append(sb.Members(), "balancer")
	for i := range sb.cfg.Clients {
		out = append(out, fmt.Sprintf("client-%d", i+1))
	}
	return out
}

// Resolve turns a target (a name or a role such as etcd:leader) into a
// component name, now.
func (sb *Sandbox) Resolve(target string) (string, error) {
	switch target {
	case "etcd:leader":
		if sb.cluster == nil {
			return "", ErrExternal
		}
		if l, ok := sb.cluster.Leader(); ok {
			return l, nil
		}
		return "", fmt.Errorf("%w: no etcd leader right now", ErrNotRunning)
	case "etcd:follower":
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
	case "lockserver:any":
		sb.mu.Lock()
		defer sb.mu.Unlock()
		for _, s := range sb.servers {
			if s.server != nil {
				return s.name, nil
			}
		}
		return "", fmt.Errorf("%w: no running lock server", ErrNotRunning)
	case "client:holder":
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
// a lock server or the balancer (listener and live connections closed).
func (sb *Sandbox) Crash(name string) error {
	defer sb.triggers.releaseAll()
	switch kindOf(name) {
	case "etcd":
		if sb.cluster == nil {
			return ErrExternal
		}
		return sb.cluster.Crash(name)
	case "lockserver":
		sb.mu.Lock()
		slot := sb.slot(name)
		if slot == nil {
			sb.mu.Unlock()
			return fmt.Errorf("%w: %q", ErrUnknownNode, name)
		}
		s := slot.server
		slot.server = nil
		sb.mu.Unlock()
		if s == nil {
			return fmt.Errorf("%w: %s", ErrNotRunning, name)
		}
		s.Resume()
		return s.Close()
	case "balancer":
		sb.mu.Lock()
		lb := sb.balancer
		sb.balancer = nil
		sb.mu.Unlock()
		if lb == nil {
			return fmt.Errorf("%w: balancer", ErrNotRunning)
		}
		return lb.Close()
	}
	return fmt.Errorf("%w: cannot crash %q", ErrUnknownNode, name)
}

// Restart starts a crashed component again at the same address (an etcd
// member from its kept data dir).
func (sb *Sandbox) Restart(ctx context.Context, name string) error {
	defer sb.triggers.releaseAll()
	switch kindOf(name) {
	case "etcd":
		if sb.cluster == nil {
			return ErrExternal
		}
		return sb.cluster.Restart(ctx, name)
	case "lockserver":
		sb.mu.Lock()
		defer sb.mu.Unlock()
		slot := sb.slot(name)
		if slot == nil {
			return fmt.Errorf("%w: %q", ErrUnknownNode, name)
		}
		if slot.server != nil {
			return fmt.Errorf("%w: %s", ErrRunning, name)
		}
		return sb.startServer(ctx, slot)
	case "balancer":
		sb.mu.Lock()
		defer sb.mu.Unlock()
		if sb.balancer != nil {
			return fmt.Errorf("%w: balancer", ErrRunning)
		}
		return sb.startBalancer(ctx)
	}
	return fmt.Errorf("%w: cannot restart %q", ErrUnknownNode, name)
}

func (sb *Sandbox) slot(name string) *serverSlot {
	for _, s := range sb.servers {
		if s.name == name {
			return s
		}
	}
	return nil
}

// Pause freezes a client or a lock server at its next checkpoint.
func (sb *Sandbox) Pause(name string) error { return sb.setPaused(name, true) }

// Resume undoes Pause.
func (sb *Sandbox) Resume(name string) error { return sb.setPaused(name, false) }

func (sb *Sandbox) setPaused(name string, paused bool) error {
	defer sb.triggers.releaseAll()
	switch kindOf(name) {
	case "client":
		c, err := sb.clientByName(name)
		if err != nil {
			return err
		}
		if paused {
			c.gate.Pause()
		} else {
			c.gate.Resume()
		}
		sb.notifyChange()
		return nil
	case "lockserver":
		sb.mu.Lock()
		defer sb.mu.Unlock()
		slot := sb.slot(name)
		if slot == nil {
			return fmt.Errorf("%w: %q", ErrUnknownNode, name)
		}
		slot.paused = paused
		if slot.server == nil {
			return fmt.Errorf("%w: %s", ErrNotRunning, name)
		}
		if paused {
			slot.server.Pause()
		} else {
			slot.server.Resume()
		}
		return nil
	}
	return fmt.Errorf("%w: only clients and lock servers can be paused, not %q", ErrUnknownNode, name)
}

// Cut drops traffic from one component to another, one direction only. Links
// between etcd members are cut at the members' peer proxies (see
// cluster.Cut); every other link (client -> balancer -> lock server -> etcd
// member) in the sandbox's network emulator, where a cut link stalls like a
// black hole.
func (sb *Sandbox) Cut(from, to string) error {
	defer sb.triggers.releaseAll()
	for _, n := range []string{from, to} {
		if !slices.Contains(sb.Names(), n) {
			return fmt.Errorf("%w: %q", ErrUnknownNode, n)
		}
	}
	if kindOf(from) == "etcd" && kindOf(to) == "etcd" {
		if sb.cluster == nil {
			return ErrExternal
		}
		return sb.cluster.Cut(from, to)
	}
	sb.net.Block(from, to)
	return nil
}

// Mend undoes one Cut.
func (sb *Sandbox) Mend(from, to string) error {
	defer sb.triggers.releaseAll()
	if kindOf(from) == "etcd" && kindOf(to) == "etcd" {
		if sb.cluster == nil {
			return ErrExternal
		}
		return sb.cluster.Mend(from, to)
	}
	sb.net.Unblock(from, to)
	return nil
}

// Delay adds latency (± jitter) to the link from one component to another.
func (sb *Sandbox) Delay(from, to string, latency, jitter time.Duration) error {
	defer sb.triggers.releaseAll()
	for _, n := range []string{from, to} {
		if !slices.Contains(sb.Names(), n) {
			return fmt.Errorf("%w: %q", ErrUnknownNode, n)
		}
	}
	if kindOf(from) == "etcd" && kindOf(to) == "etcd" {
		if sb.cluster == nil {
			return ErrExternal
		}
		return sb.cluster.SetDelay(from, to, latency, jitter)
	}
	sb.net.SetDelay(from, to, latency, jitter)
	return nil
}

// ClockSkew shifts a client's wall clock by d (it then misjudges expiresAt).
func (sb *Sandbox) ClockSkew(name string, d time.Duration) error {
	defer sb.triggers.releaseAll()
	c, err := sb.clientByName(name)
	if err != nil {
		return err
	}
	c.skew.Store(int64(d))
	return nil
}

// Heal undoes every partition, cut, delay and clock skew (not crashes or pauses).
func (sb *Sandbox) Heal() error {
	defer sb.triggers.releaseAll()
	sb.net.Heal()
	sb.mu.Lock()
	for _, c := range sb.clients {
		c.skew.Store(0)
	}
	sb.mu.Unlock()
	if sb.cluster != nil {
		return sb.cluster.Heal()
	}
	return nil
}

// Wait blocks until a client enters the condition's phase (Holder a client
// name, or ""/"any"/"client:holder" for any client), then holds that client
// at the phase until the next fault has been applied (at most 2 s). It
// returns the client that matched.
func (sb *Sandbox) Wait(ctx context.Context, cond faults.Condition) (string, error) {
	holder := cond.Holder
	if holder == "any" || holder == "client:holder" {
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
