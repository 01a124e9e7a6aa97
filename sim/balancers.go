package sim

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/loadbalancer"
)

// The balancers of a sandbox. One balancer is named "balancer" and is the
// entry point itself. Two or more (balancer-1..N) are a VRRP group behind a
// virtual address, which is the entry point: balancer-i has priority
// 100 + 10*(N-i), so balancer-1 is the preferred master; their adverts
// travel over the network emulator (links balancer-i -> balancer-j), so a
// partition between them is a real cut; the clients resolve the virtual
// address to its owner when they connect (through their own links, client-k
// -> balancer-i), and outside clients (curl) use its listener.

// balancerSlot is one balancer: its proxy and, in a group, its VRRP node.
type balancerSlot struct {
	name       string
	addr       string // fixed after the first start, reused on restart
	advertAddr string // likewise, for the node's adverts
	priority   int
	lb         *loadbalancer.Balancer // nil while crashed
	node       *loadbalancer.Node     // nil with a single balancer or while crashed
	paused     bool
}

// BalancerEvent is one change of a balancer's VRRP state.
type BalancerEvent struct {
	At       time.Duration `json:"atNs"` // since Started
	Balancer string        `json:"balancer"`
	From     string        `json:"from"` // init, backup, master
	To       string        `json:"to"`
	Reason   string        `json:"reason"`
}

// maxBalancerEvents bounds the log of transitions (a long session keeps
// the latest).
const maxBalancerEvents = 1000

// balancerLog is the log of VRRP transitions.
type balancerLog struct {
	mu     sync.Mutex
	events []BalancerEvent
	subs   map[int]func(BalancerEvent)
	next   int
}

func (l *balancerLog) add(ev BalancerEvent) {
	l.mu.Lock()
	if len(l.events) == maxBalancerEvents {
		l.events = slices.Delete(l.events, 0, 1)
	}
	l.events = append(l.events, ev)
	subs := make([]func(BalancerEvent), 0, len(l.subs))
	for _, f := range l.subs {
		subs = append(subs, f)
	}
	l.mu.Unlock()
	for _, f := range subs {
		f(ev)
	}
}

// SubscribeBalancers calls f with every VRRP transition from now on, from
// the balancer's goroutine (f must not block); cancel stops the calls.
func (sb *Sandbox) SubscribeBalancers(f func(BalancerEvent)) (cancel func()) {
	l := &sb.lbLog
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.subs == nil {
		l.subs = map[int]func(BalancerEvent){}
	}
	l.next++
	id := l.next
	l.subs[id] = f
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.subs, id)
	}
}

// BalancerEvents returns the VRRP transitions so far, oldest first (none
// with a single balancer).
func (sb *Sandbox) BalancerEvents() []BalancerEvent {
	sb.lbLog.mu.Lock()
	defer sb.lbLog.mu.Unlock()
	return slices.Clone(sb.lbLog.events)
}

// advertInterval is the group's advert interval: the configured one, or
// the pace's.
func (c Config) advertInterval() time.Duration {
	switch {
	case c.AdvertInterval > 0:
		return c.AdvertInterval
	case c.Pace == PaceClassroom:
		return ClassroomAdvertInterval
	}
	return FastAdvertInterval
}

// startBalancers starts the balancers and, with two or more, their VRRP
// group and the virtual address.
func (sb *Sandbox) startBalancers(ctx context.Context) error {
	n := sb.cfg.Balancers
	for i, name := range component.Names(component.Balancer, n) {
		slot := &balancerSlot{name: name, addr: "127.0.0.1:0", advertAddr: "127.0.0.1:0", priority: 100 + 10*(n-1-i)}
		if n == 1 {
			slot.addr = sb.cfg.BalancerListen
		}
		sb.lbs = append(sb.lbs, slot)
	}
	if n > 1 {
		sb.vip = loadbalancer.NewVirtualAddress(loadbalancer.VirtualConfig{Listen: sb.cfg.BalancerListen})
		if err := sb.vip.Start(ctx); err != nil {
			return err
		}
	}
	for _, slot := range sb.lbs {
		if err := sb.startBalancer(ctx, slot); err != nil {
			return err
		}
	}
	sb.setPeers()
	if sb.vip == nil {
		sb.entry = sb.lbs[0].addr
		return nil
	}
	sb.entry = sb.vip.Addr()
	return sb.awaitOwner(ctx)
}

// awaitOwner waits until the group's first election gave the virtual
// address an owner (one master-down interval and a little), as a cluster
// waits for its first leader, so that clients started next find it served.
func (sb *Sandbox) awaitOwner(ctx context.Context) error {
	limit := time.NewTimer(20*sb.cfg.advertInterval() + 10*time.Second)
	defer limit.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if owner, _ := sb.vip.Owner(); owner != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-limit.C:
			return fmt.Errorf("sim: no balancer claimed the virtual address: %w", ErrNotRunning)
		case <-tick.C:
		}
	}
}

// startBalancer starts one balancer (and its node) on its fixed addresses.
func (sb *Sandbox) startBalancer(ctx context.Context, slot *balancerSlot) error {
	backends := make([]string, len(sb.servers))
	for i, s := range sb.servers {
		backends[i] = "http://" + s.addr
	}
	dial := sb.net.Dialer(slot.name)
	tr := &http.Transport{
		DialContext:         dial,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
	}
	lb, err := loadbalancer.New(loadbalancer.Config{
		Listen:         slot.addr,
		Mode:           sb.cfg.BalancerMode,
		Backends:       backends,
		Policy:         sb.cfg.Policy,
		HealthInterval: sb.cfg.HealthInterval,
		Transport:      tr,
		Dial:           dial, // tcp mode: client connections to lock servers
	})
	if err != nil {
		return err
	}
	if err := lb.Start(ctx); err != nil {
		return fmt.Errorf("%s: %w", slot.name, err)
	}
	slot.lb, slot.addr, slot.paused = lb, lb.Addr(), false
	sb.net.Name(slot.addr, slot.name)
	if sb.vip == nil {
		return nil
	}
	node, err := loadbalancer.NewNode(loadbalancer.NodeConfig{
		RouterConfig: loadbalancer.RouterConfig{
			Name: slot.name, Priority: slot.priority, Interval: sb.cfg.advertInterval(), NoPreempt: sb.cfg.NoPreempt,
		},
		Listen: slot.advertAddr,
		Serve:  slot.addr,
		VIP:    sb.vip,
		Dial:   dial,
		OnTransition: func(t loadbalancer.Transition) {
			sb.lbLog.add(BalancerEvent{At: sb.Elapsed(), Balancer: slot.name, From: t.From.String(), To: t.To.String(), Reason: t.Reason})
		},
	})
	if err == nil {
		err = node.Start(ctx)
	}
	if err != nil {
		_ = lb.Close()
		slot.lb = nil
		return fmt.Errorf("%s: %w", slot.name, err)
	}
	slot.node, slot.advertAddr = node, node.AdvertAddr()
	sb.net.Name(slot.advertAddr, slot.name)
	return nil
}

// setPeers tells every running node where the others listen for adverts.
func (sb *Sandbox) setPeers() {
	peers := map[string]string{}
	for _, s := range sb.lbs {
		peers[s.name] = s.advertAddr
	}
	for _, s := range sb.lbs {
		if s.node != nil {
			s.node.SetPeers(peers)
		}
	}
}

// balancerSlot returns the balancer of that name, or nil; sb.mu is held.
func (sb *Sandbox) balancerSlot(name string) *balancerSlot {
	for _, s := range sb.lbs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// crashBalancer stops a balancer abruptly: its proxy drops every
// connection (requests in flight end without an answer), its node stops
// advertising and leaves its claim on the virtual address behind.
func (sb *Sandbox) crashBalancer(name string) error {
	sb.mu.Lock()
	slot := sb.balancerSlot(name)
	if slot == nil {
		sb.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrUnknownNode, name)
	}
	lb, node := slot.lb, slot.node
	slot.lb, slot.node, slot.paused = nil, nil, false
	sb.mu.Unlock()
	if lb == nil {
		return fmt.Errorf("%w: %s", ErrNotRunning, name)
	}
	var err error
	if node != nil {
		err = node.Close()
	}
	if cerr := lb.Close(); err == nil {
		err = cerr
	}
	return err
}

// restartBalancer starts a crashed balancer again on its addresses; in a
// group it starts as backup.
func (sb *Sandbox) restartBalancer(ctx context.Context, name string) error {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	slot := sb.balancerSlot(name)
	if slot == nil {
		return fmt.Errorf("%w: %q", ErrUnknownNode, name)
	}
	if slot.lb != nil {
		return fmt.Errorf("%w: %s", ErrRunning, name)
	}
	if err := sb.startBalancer(ctx, slot); err != nil {
		return err
	}
	sb.setPeers()
	return nil
}

// pauseBalancer freezes or thaws a balancer: its proxy and its node.
func (sb *Sandbox) pauseBalancer(name string, paused bool) error {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	slot := sb.balancerSlot(name)
	if slot == nil {
		return fmt.Errorf("%w: %q", ErrUnknownNode, name)
	}
	if slot.lb == nil {
		return fmt.Errorf("%w: %s", ErrNotRunning, name)
	}
	slot.paused = paused
	if paused {
		slot.lb.Pause()
		if slot.node != nil {
			slot.node.Pause()
		}
		return nil
	}
	slot.lb.Resume()
	if slot.node != nil {
		slot.node.Resume()
	}
	return nil
}

// resolveMaster names a balancer that is master now: the only balancer if
// it runs; in a group, a running master, the owner of the virtual address
// first (in a split brain there are several).
func (sb *Sandbox) resolveMaster() (string, error) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.vip == nil {
		if s := sb.lbs[0]; s.lb != nil {
			return s.name, nil
		}
		return "", fmt.Errorf("%w: the balancer is down", ErrNotRunning)
	}
	owner, _ := sb.vip.Owner()
	var masters []string
	for _, s := range sb.lbs {
		if s.node != nil && s.node.Status().State == loadbalancer.StateMaster {
			masters = append(masters, s.name)
		}
	}
	switch {
	case slices.Contains(masters, owner):
		return owner, nil
	case len(masters) > 0:
		return masters[0], nil
	}
	return "", fmt.Errorf("%w: no balancer is master right now", ErrNotRunning)
}

// closeBalancers stops every balancer and the virtual address.
func (sb *Sandbox) closeBalancers() []error {
	sb.mu.Lock()
	slots := slices.Clone(sb.lbs)
	sb.mu.Unlock()
	var errs []error
	for _, s := range slots {
		sb.mu.Lock()
		lb, node := s.lb, s.node
		s.lb, s.node = nil, nil
		sb.mu.Unlock()
		if node != nil {
			errs = append(errs, node.Close())
		}
		if lb != nil {
			errs = append(errs, lb.Close())
		}
	}
	if sb.vip != nil {
		errs = append(errs, sb.vip.Close())
	}
	return errs
}

// clientDialer is a simulated client's dial function: its links in the
// network emulator and, with a group, the virtual address resolved to its
// owner at each new connection.
func (sb *Sandbox) clientDialer(name string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dial := sb.net.Dialer(name)
	if sb.vip == nil {
		return dial
	}
	return sb.vip.Dialer(dial)
}

// BalancerState is one balancer as a viewer draws it: its proxy (Node) and,
// in a group, its place in the VRRP election.
type BalancerState struct {
	Node
	State        string        // master, backup, init; "" when down or single
	Priority     int           // VRRP priority
	Preempt      bool          // VRRP preemption
	Master       string        // who it takes for master
	OwnsVIP      bool          // the virtual address goes to it now
	AdvertsSent  uint64        // adverts sent as master so far (this run of it)
	AdvertsHeard uint64        // adverts received so far (this run of it)
	MasterDown   time.Duration // its master-down interval
	Since        time.Duration // when its state last changed, since Started
	Reason       string        // why
}

// VIPState is the virtual address of a group of balancers.
type VIPState struct {
	URL   string
	Owner string // the balancer its traffic goes to ("" = none)
	Moves uint64 // changes of owner so far
}

// balancerStates reads every balancer, with each one's in-flight count per
// lock server added into inflight (by URL).
func (sb *Sandbox) balancerStates(inflight map[string]int64, sent map[string]uint64) ([]BalancerState, *VIPState) {
	sb.mu.Lock()
	slots := make([]balancerSlot, len(sb.lbs))
	for i, s := range sb.lbs {
		slots[i] = *s
	}
	vip := sb.vip
	sb.mu.Unlock()
	var owner string
	var vs *VIPState
	if vip != nil {
		owner, _ = vip.Owner()
		vs = &VIPState{URL: vip.URL(), Owner: owner, Moves: vip.Moves()}
	}
	out := make([]BalancerState, len(slots))
	for i, s := range slots {
		b := BalancerState{Node: Node{Name: s.name, URL: "http://" + s.addr, Up: s.lb != nil, Paused: s.paused}, Priority: s.priority, OwnsVIP: s.name == owner}
		if s.lb != nil {
			for _, st := range s.lb.Stats() {
				b.InFlight += st.InFlight
				b.Requests += st.Requests
				inflight[st.URL] += st.InFlight
				sent[st.URL] += st.Requests
			}
		}
		if s.node != nil {
			st := s.node.Status()
			b.State, b.Preempt, b.Master = st.State.String(), st.Preempt, st.Master
			b.AdvertsSent, b.AdvertsHeard, b.MasterDown, b.Reason = st.AdvertsSent, st.AdvertsHeard, st.MasterDown, st.Reason
			if !st.Since.IsZero() {
				b.Since = st.Since.Sub(sb.start)
			}
		}
		out[i] = b
	}
	return out, vs
}
