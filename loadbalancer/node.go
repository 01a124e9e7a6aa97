package loadbalancer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"time"
)

// NodeConfig configures a [Node]. Zero fields take the documented defaults.
type NodeConfig struct {
	// RouterConfig is the node's place in the election (name, priority,
	// advert interval, preemption).
	RouterConfig
	// Listen is where the node receives adverts. Default "127.0.0.1:0".
	Listen string
	// Serve is the address of this node's balancer: while the node is
	// master, the virtual address sends its traffic there. Required with VIP.
	Serve string
	// VIP is the virtual address the node claims with every advert it sends
	// as master and releases when it becomes backup. nil: none.
	VIP *VirtualAddress
	// Dial connects to a peer to send it adverts (a network emulator's
	// dialer in the sandbox, so that the adverts between two balancers can
	// be cut). Default: a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now is the router's clock. Default time.Now.
	Now func() time.Time
	// OnTransition is called with every change of state, from the node's
	// goroutine; it must not block.
	OnTransition func(Transition)
}

// NodeStatus is a snapshot of a Node.
type NodeStatus struct {
	Name     string
	State    State
	Priority int
	Preempt  bool
	// Master is who the node takes for master (itself when master).
	Master string
	// Since is when the state last changed, and Reason why.
	Since  time.Time
	Reason string
	// AdvertsSent counts the adverts it sent as master (one per interval,
	// whether or not a peer got it); AdvertsHeard those it received.
	AdvertsSent, AdvertsHeard uint64
	// MasterDown is its current master-down interval.
	MasterDown time.Duration
	Paused     bool
}

// Node is the I/O shell of a [Router]: one balancer's VRRP speaker. It
// receives adverts on a TCP listener (one JSON object a line), sends its own
// to every peer over TCP connections made with Dial — an advert that cannot
// be delivered within one interval is dropped, as a lost datagram — and
// claims the virtual address with every advert it sends as master.
//
// Close is a crash: no goodbye advert, and the claim on the virtual address
// stays behind; the backups notice when the adverts stop. Pause freezes the
// node as SIGSTOP would: it neither advertises nor reads adverts (they
// queue, the latest 16 kept) until Resume; then it first reads what
// queued, then fires its overdue timer.
type Node struct {
	cfg    NodeConfig
	router *Router

	gate  gate
	inbox chan Advert

	mu      sync.Mutex // router and the fields below
	since   time.Time
	reason  string
	sent    uint64
	heard   uint64
	ln      net.Listener
	senders map[string]*sender // by peer name
	started bool
	closed  bool
	cancel  context.CancelFunc
	ctx     context.Context
	conns   map[net.Conn]struct{} // accepted advert connections
	wg      sync.WaitGroup
	closeCh chan struct{}
}

// NewNode validates cfg and returns a node that is not started.
func NewNode(cfg NodeConfig) (*Node, error) {
	r, err := NewRouter(cfg.RouterConfig)
	if err != nil {
		return nil, err
	}
	cfg.RouterConfig = r.Config()
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.VIP != nil && cfg.Serve == "" {
		return nil, fmt.Errorf("%w: a node with a virtual address needs Serve, its balancer's address", ErrInvalidVRRP)
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{}).DialContext
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Node{
		cfg: cfg, router: r, inbox: make(chan Advert, 16),
		senders: map[string]*sender{}, conns: map[net.Conn]struct{}{}, closeCh: make(chan struct{}),
	}, nil
}

// Start listens for adverts and starts the election: the node is backup
// (master at once with priority 255). ctx bounds the start only.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.closed:
		return ErrClosed
	case n.started:
		return ErrStarted
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", n.cfg.Listen)
	if err != nil {
		return fmt.Errorf("loadbalancer: %s: listen for adverts on %s: %w", n.cfg.Name, n.cfg.Listen, err)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.started, n.ln = true, ln
	n.wg.Go(func() { n.accept(ln) })
	n.wg.Go(n.run)
	return nil
}

// AdvertAddr is where the node receives adverts ("" before Start).
func (n *Node) AdvertAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ln == nil {
		return ""
	}
	return n.ln.Addr().String()
}

// SetPeers sets the other members of the group: name -> advert address.
// The node's own name is skipped. Call it after Start (before, it does
// nothing); peers can change at any time (a sandbox learns the addresses
// after every node has started).
func (n *Node) SetPeers(peers map[string]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || !n.started {
		return
	}
	for name, s := range n.senders {
		if addr, ok := peers[name]; !ok || addr != s.addr {
			s.cancel()
			delete(n.senders, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(peers)) {
		if name == n.cfg.Name || n.senders[name] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(n.ctx)
		s := &sender{addr: peers[name], ch: make(chan Advert, 1), cancel: cancel}
		n.senders[name] = s
		n.wg.Go(func() { n.send(ctx, s) })
	}
}

// Pause freezes the node (see Node).
func (n *Node) Pause() { n.gate.pause() }

// Resume undoes Pause.
func (n *Node) Resume() { n.gate.resume() }

// Status returns a snapshot.
func (n *Node) Status() NodeStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	return NodeStatus{
		Name: n.cfg.Name, State: n.router.State(), Priority: n.cfg.Priority, Preempt: !n.cfg.NoPreempt,
		Master: n.router.Master(), Since: n.since, Reason: n.reason,
		AdvertsSent: n.sent, AdvertsHeard: n.heard, MasterDown: n.router.MasterDownInterval(),
		Paused: n.gate.paused(),
	}
}

// Close stops the node abruptly (see Node) and returns when its goroutines
// are gone. It is idempotent.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		<-n.closeCh
		return nil
	}
	n.closed = true
	ln, cancel := n.ln, n.cancel
	conns := slices.Collect(maps.Keys(n.conns))
	n.mu.Unlock()
	var err error
	if ln != nil {
		cancel()
		err = ln.Close()
		for _, c := range conns {
			_ = c.Close()
		}
	}
	n.wg.Wait()
	close(n.closeCh)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("loadbalancer: %s: close: %w", n.cfg.Name, err)
	}
	return nil
}

// run is the node's one goroutine that drives the router.
func (n *Node) run() {
	ctx := n.ctx
	n.apply(func(r *Router, now time.Time) Output { return r.Start(now) })
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		n.mu.Lock()
		wait := n.router.Deadline().Sub(n.cfg.Now())
		n.mu.Unlock()
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			if n.gate.wait(ctx) != nil {
				return
			}
			n.drain() // a resumed process first reads what queued up
			n.apply(func(r *Router, now time.Time) Output { return r.Tick(now) })
		case a := <-n.inbox:
			if n.gate.wait(ctx) != nil {
				return
			}
			n.hear(a)
		}
	}
}

// drain handles every advert waiting in the inbox.
func (n *Node) drain() {
	for {
		select {
		case a := <-n.inbox:
			n.hear(a)
		default:
			return
		}
	}
}

func (n *Node) hear(a Advert) {
	n.apply(func(r *Router, now time.Time) Output {
		n.heard++
		return r.Step(now, a)
	})
}

// apply runs one input of the router and carries out its output: a
// transition is recorded (and a master that became backup releases the
// virtual address), an advert is sent to every peer and, by a master,
// claims the virtual address.
func (n *Node) apply(input func(*Router, time.Time) Output) {
	n.mu.Lock()
	now := n.cfg.Now()
	out := input(n.router, now)
	if out.Transition != nil {
		n.since, n.reason = now, out.Transition.Reason
	}
	var senders []*sender
	var adv Advert
	if out.Advertise {
		n.sent++
		adv = n.router.Advert()
		for _, s := range n.senders {
			senders = append(senders, s)
		}
	}
	n.mu.Unlock()
	if t := out.Transition; t != nil {
		if t.From == StateMaster && n.cfg.VIP != nil {
			n.cfg.VIP.Release(n.cfg.Name)
		}
		if n.cfg.OnTransition != nil {
			n.cfg.OnTransition(*t)
		}
	}
	if out.Advertise {
		if n.cfg.VIP != nil {
			n.cfg.VIP.Claim(n.cfg.Name, n.cfg.Serve)
		}
		for _, s := range senders {
			s.offer(adv)
		}
	}
}

// accept reads adverts from every connection made to ln.
func (n *Node) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			_ = c.Close()
			return
		}
		n.conns[c] = struct{}{}
		n.mu.Unlock()
		n.wg.Go(func() {
			defer func() {
				n.mu.Lock()
				delete(n.conns, c)
				n.mu.Unlock()
				_ = c.Close()
			}()
			n.read(c)
		})
	}
}

// read queues every advert read from c, keeping the latest 16 when the
// node does not keep up (paused).
func (n *Node) read(c net.Conn) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 256), 4<<10)
	for sc.Scan() {
		var a Advert
		if json.Unmarshal(sc.Bytes(), &a) != nil {
			return // not a peer of ours
		}
		for {
			select {
			case n.inbox <- a:
			default:
				select {
				case <-n.inbox: // drop the oldest
				default:
				}
				continue
			}
			break
		}
	}
}

// sender delivers one node's adverts to one peer: the latest advert only,
// each within one interval or not at all.
type sender struct {
	addr   string
	ch     chan Advert
	cancel context.CancelFunc
}

// offer queues a, replacing an advert not sent yet.
func (s *sender) offer(a Advert) {
	for {
		select {
		case s.ch <- a:
			return
		default:
			select {
			case <-s.ch:
			default:
			}
		}
	}
}

func (n *Node) send(ctx context.Context, s *sender) {
	var c net.Conn
	defer func() {
		if c != nil {
			_ = c.Close()
		}
	}()
	for {
		var a Advert
		select {
		case <-ctx.Done():
			return
		case a = <-s.ch:
		}
		if n.gate.wait(ctx) != nil {
			return
		}
		line, _ := json.Marshal(a) // an Advert always encodes
		line = append(line, '\n')
		deadline := time.Now().Add(n.cfg.Interval)
		if c == nil {
			dctx, cancel := context.WithDeadline(ctx, deadline)
			conn, err := n.cfg.Dial(dctx, "tcp", s.addr)
			cancel()
			if err != nil {
				continue // lost; the next advert tries again
			}
			c = conn
		}
		_ = c.SetWriteDeadline(deadline)
		if _, err := c.Write(line); err != nil {
			_ = c.Close() // a half-written line must not reach the peer later
			c = nil
		}
	}
}
