package faults

import (
	"context"
	"github.com/locksim/locksim/component"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Network emulates blocked and slow links for TCP connections made through its dialers, inside
// one process. Only the dialing side is wrapped; it shapes both directions: its writes (from ->
// to) and what it reads (to -> from). Create it with NewNetwork.
type Network struct {
	mu      sync.Mutex
	rng     *rand.Rand
	names   map[string]string // dial address -> component name
	links   map[component.Link]*linkState
	changed chan struct{} // closed and replaced on every change
}

type linkState struct {
	blocked         bool
	latency, jitter time.Duration
}

// LinkState is the emulated state of one direction.
type LinkState struct {
	From, To        string
	Blocked         bool
	Latency, Jitter time.Duration
}

// NewNetwork returns a Network with every link open. rng draws jitter; nil means a fixed seed.
func NewNetwork(rng *rand.Rand) *Network {
	if rng == nil {
		rng = rand.New(rand.NewPCG(0, 0))
	}
	return &Network{
		rng: rng, names: map[string]string{}, links: map[component.Link]*linkState{},
		changed: make(chan struct{}),
	}
}

// Name names the component listening on addr ("127.0.0.1:2379" -> "etcd-1"). Dials to an
// unnamed address use the address itself as the name.
func (n *Network) Name(addr, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.names[addr] = name
}

// Block stalls bytes from `from` to `to`: new dials hang (until their ctx ends) and writes in that
// direction wait; nothing is dropped.
func (n *Network) Block(from, to string) { n.update(from, to, func(l *linkState) { l.blocked = true }) }

// Unblock undoes Block; stalled bytes flow again, in order.
func (n *Network) Unblock(from, to string) {
	n.update(from, to, func(l *linkState) { l.blocked = false })
}

// SetDelay delivers every write from `from` to `to` after latency ± jitter (at least 0), order
// preserved. Zero latency and jitter remove the delay.
func (n *Network) SetDelay(from, to string, latency, jitter time.Duration) {
	n.update(from, to, func(l *linkState) { l.latency, l.jitter = max(latency, 0), max(jitter, 0) })
}

// Heal clears every block and delay.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.links)
	n.notifyLocked()
}

// Links returns every link with a block or a delay, sorted.
func (n *Network) Links() []LinkState {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]LinkState, 0, len(n.links))
	for k, l := range n.links {
		out = append(out, LinkState{From: k.From, To: k.To, Blocked: l.blocked, Latency: l.latency, Jitter: l.jitter})
	}
	slices.SortFunc(out, func(a, b LinkState) int {
		if c := strings.Compare(a.From, b.From); c != 0 {
			return c
		}
		return strings.Compare(a.To, b.To)
	})
	return out
}

func (n *Network) update(from, to string, f func(*linkState)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := component.Link{From: from, To: to}
	l := n.links[k]
	if l == nil {
		l = &linkState{}
		n.links[k] = l
	}
	f(l)
	if *l == (linkState{}) {
		delete(n.links, k)
	}
	n.notifyLocked()
}

func (n *Network) notifyLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// hold reports, for the link, whether it is blocked, a delay drawn for one delivery, and a
// channel closed at the next change.
func (n *Network) hold(k component.Link) (blocked bool, delay time.Duration, changed <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.links[k]
	if l == nil {
		return false, 0, n.changed
	}
	delay = l.latency
	if l.jitter > 0 {
		delay += time.Duration(n.rng.Int64N(int64(2*l.jitter)+1)) - l.jitter
	}
	return l.blocked, max(delay, 0), n.changed
}

// Dialer returns a dial function for http.Transport.DialContext or grpc.WithContextDialer
// (adapt the signature) whose connections are shaped as links from `from`.
func (n *Network) Dialer(from string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.mu.Lock()
		to, ok := n.names[addr]
		n.mu.Unlock()
		if !ok {
			to = addr
		}
		k := component.Link{From: from, To: to}
		// Like a SYN into a black hole: wait while blocked; a delayed link delays the connect.
		for {
			blocked, delay, changed := n.hold(k)
			if !blocked {
				if delay > 0 {
					t := time.NewTimer(delay)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
						return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
					}
				}
				break
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
			}
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &conn{Conn: c, net: n, out: k, in: component.Link{From: to, To: from}, closed: make(chan struct{}), dl: make(chan struct{})}, nil
	}
}

// conn shapes both directions of a dialed connection.
type conn struct {
	net.Conn
	net     *Network
	out, in component.Link

	closeOnce sync.Once
	closed    chan struct{}

	wmu sync.Mutex // serialises writes: order preserved
	rmu sync.Mutex // serialises reads
	// pending holds bytes that arrived but whose delivery was interrupted by a read deadline.
	pending   []byte
	pendingAt time.Time

	mu             sync.Mutex
	rdl, wdl       time.Time
	dl             chan struct{} // closed and replaced when a deadline changes
	lastW, lastR   time.Time     // latest delivery times, to keep order under jitter
	pendingDueTime time.Time
}

func (c *conn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func (c *conn) SetDeadline(t time.Time) error {
	c.setDeadline(&c.rdl, t)
	c.setDeadline(&c.wdl, t)
	return c.Conn.SetDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.setDeadline(&c.rdl, t)
	return c.Conn.SetReadDeadline(t)
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.setDeadline(&c.wdl, t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *conn) setDeadline(p *time.Time, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*p = t
	close(c.dl)
	c.dl = make(chan struct{})
}

// await waits until link k is open and the delivery time (arrival + a drawn delay, never before
// *last) has come. It fails when the conn closes or the deadline passes.
func (c *conn) await(k component.Link, arrival time.Time, due *time.Time, last *time.Time, deadline *time.Time) error {
	for {
		blocked, delay, changed := c.net.hold(k)
		c.mu.Lock()
		if due.IsZero() {
			*due = arrival.Add(delay)
			if due.Before(*last) {
				*due = *last
			}
		}
		dl, dlChanged := *deadline, c.dl
		c.mu.Unlock()
		now := time.Now()
		if !dl.IsZero() && !now.Before(dl) {
			return os.ErrDeadlineExceeded
		}
		var wake <-chan time.Time
		if !blocked {
			wait := due.Sub(now)
			if wait <= 0 {
				c.mu.Lock()
				*last = *due
				c.mu.Unlock()
				return nil
			}
			wake = time.After(wait) // short-lived: bounded by the link delay
		}
		var dlTimer *time.Timer
		var dlC <-chan time.Time
		if !dl.IsZero() {
			dlTimer = time.NewTimer(dl.Sub(now))
			dlC = dlTimer.C
		}
		select {
		case <-wake:
		case <-changed:
		case <-dlChanged:
		case <-dlC:
		case <-c.closed:
			if dlTimer != nil {
				dlTimer.Stop()
			}
			return net.ErrClosed
		}
		if dlTimer != nil {
			dlTimer.Stop()
		}
	}
}

func (c *conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var due time.Time
	if err := c.await(c.out, time.Now(), &due, &c.lastW, &c.wdl); err != nil {
		return 0, &net.OpError{Op: "write", Net: "tcp", Addr: c.RemoteAddr(), Err: err}
	}
	return c.Conn.Write(b)
}

func (c *conn) Read(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(c.pending) == 0 {
		n, err := c.Conn.Read(b)
		if n == 0 {
			return 0, err
		}
		// The bytes have arrived; hold them back while the link is blocked or slow.
		blocked, delay, _ := c.net.hold(c.in)
		if !blocked && delay == 0 {
			return n, err
		}
		// An error with data (rare for TCP) is returned again by the next Read.
		now := time.Now()
		c.pending, c.pendingAt, c.pendingDueTime = slices.Clone(b[:n]), now, now.Add(delay)
		c.mu.Lock()
		if c.pendingDueTime.Before(c.lastR) {
			c.pendingDueTime = c.lastR
		}
		c.mu.Unlock()
	}
	if err := c.await(c.in, c.pendingAt, &c.pendingDueTime, &c.lastR, &c.rdl); err != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Addr: c.RemoteAddr(), Err: err}
	}
	n := copy(b, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}
