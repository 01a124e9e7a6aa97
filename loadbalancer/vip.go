package loadbalancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// ErrNoOwner is the error of a connection to a virtual address that no
// balancer claims: nothing was sent.
var ErrNoOwner = errors.New("loadbalancer: no balancer owns the virtual address")

// VirtualConfig configures a [VirtualAddress]. Zero fields take the
// documented defaults.
type VirtualConfig struct {
	// Listen is the address clients use. Default "127.0.0.1:0".
	Listen string
	// Dial connects a connection accepted on Listen to the owner's address.
	// Default: a net.Dialer with a 2s timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OnMove is called after the address moved to another owner ("" = no
	// owner); it must not block.
	OnMove func(from, to string)
}

// VirtualAddress is the one address that clients of a redundant group of
// balancers use, standing in for VRRP's virtual IP on a LAN. A balancer
// that is master by the VRRP election claims it (a [Node] does, with every
// advert it sends) and releases it when it becomes backup; it never looks
// at who is alive. Its traffic goes to the owner, the balancer whose claim
// came last: a VRRP master sends its adverts from the virtual MAC address,
// so the switch learns from every advert where that address is, and the
// most recent advert wins. Two masters at once (split brain) therefore take
// the address in turns, as they would on a real switch.
//
// When the address moves, the connections made to the old owner are
// closed, as the new owner, which has no state for them, would reset them:
// a request in flight on one ends without an answer (its outcome is
// unknown), and new connections go to the new owner. A crashed owner keeps
// the address — nobody releases it — until a backup takes over.
//
// Clients reach it two ways:
//   - Listen: a real listener (for curl and other processes) whose every
//     accepted connection is joined to the owner's address. A connection
//     accepted while the owner is unreachable is closed; a request already
//     written on it ends without an answer, as through any TCP proxy.
//   - Dialer: a dial function for in-process clients that resolves the
//     address to the owner when a connection is made, as a client's ARP
//     lookup does: a refused or impossible connection fails before anything
//     is sent.
type VirtualAddress struct {
	cfg VirtualConfig

	mu        sync.Mutex
	ln        net.Listener
	owner     string
	ownerAddr string
	moves     uint64
	conns     map[string]map[io.Closer]struct{} // open connections, by the owner they go to
	closed    bool
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// NewVirtualAddress returns a virtual address with no owner. Claim and
// Dialer work before Start; Start opens the listener.
func NewVirtualAddress(cfg VirtualConfig) *VirtualAddress {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{Timeout: dialTimeout}).DialContext
	}
	return &VirtualAddress{cfg: cfg, conns: map[string]map[io.Closer]struct{}{}}
}

// Start listens on Listen and joins every accepted connection to the owner.
func (v *VirtualAddress) Start(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.closed:
		return ErrClosed
	case v.ln != nil:
		return ErrStarted
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", v.cfg.Listen)
	if err != nil {
		return fmt.Errorf("loadbalancer: virtual address: listen %s: %w", v.cfg.Listen, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	v.ln, v.cancel = ln, cancel
	v.wg.Go(func() { v.accept(runCtx, ln) })
	return nil
}

// Addr is the listening address ("" before Start).
func (v *VirtualAddress) Addr() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ln == nil {
		return ""
	}
	return v.ln.Addr().String()
}

// URL is "http://" + Addr() ("" before Start).
func (v *VirtualAddress) URL() string {
	if a := v.Addr(); a != "" {
		return "http://" + a
	}
	return ""
}

// Claim makes name, serving at addr, the owner. Claiming what one already
// owns changes nothing; taking it from another closes the connections made
// to the other.
func (v *VirtualAddress) Claim(name, addr string) {
	v.mu.Lock()
	if v.closed || (v.owner == name && v.ownerAddr == addr) {
		v.mu.Unlock()
		return
	}
	from := v.owner
	v.owner, v.ownerAddr = name, addr
	v.moves++
	drop := v.takeConns(from)
	v.mu.Unlock()
	closeAll(drop)
	if v.cfg.OnMove != nil {
		v.cfg.OnMove(from, name)
	}
}

// Release gives the address up if name owns it (its connections are
// closed); the address then has no owner until the next claim.
func (v *VirtualAddress) Release(name string) {
	v.mu.Lock()
	if v.closed || v.owner != name {
		v.mu.Unlock()
		return
	}
	v.owner, v.ownerAddr = "", ""
	v.moves++
	drop := v.takeConns(name)
	v.mu.Unlock()
	closeAll(drop)
	if v.cfg.OnMove != nil {
		v.cfg.OnMove(name, "")
	}
}

// Owner returns the current owner and its address ("" for none).
func (v *VirtualAddress) Owner() (name, addr string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.owner, v.ownerAddr
}

// Moves counts the changes of owner so far (releases included).
func (v *VirtualAddress) Moves() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.moves
}

// Dialer wraps dial, an in-process client's dial function: connections to
// the virtual address go, through dial, to the owner's address at the time
// of the dial; every other address is dialed as is. With no owner the dial
// fails with ErrNoOwner (a dial error: nothing was sent).
func (v *VirtualAddress) Dialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr != v.Addr() {
			return dial(ctx, network, addr)
		}
		name, target := v.Owner()
		if name == "" {
			return nil, &net.OpError{Op: "dial", Net: network, Err: ErrNoOwner}
		}
		c, err := dial(ctx, network, target)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, v: v, owner: name}
		if !v.track(name, tc) {
			_ = c.Close()
			return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("%w: it moved away from %s during the dial", ErrNoOwner, name)}
		}
		return tc, nil
	}
}

// Close closes the listener and every connection made through the address
// and returns when its goroutines are gone. It is idempotent.
func (v *VirtualAddress) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		v.wg.Wait()
		return nil
	}
	v.closed = true
	ln, cancel := v.ln, v.cancel
	var drop []io.Closer
	for owner := range v.conns {
		drop = append(drop, v.takeConns(owner)...)
	}
	v.mu.Unlock()
	var err error
	if ln != nil {
		cancel()
		err = ln.Close()
	}
	closeAll(drop)
	v.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("loadbalancer: virtual address: close: %w", err)
	}
	return nil
}

// track registers c as a connection to owner, if owner still owns the
// address.
func (v *VirtualAddress) track(owner string, c io.Closer) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed || v.owner != owner {
		return false
	}
	m := v.conns[owner]
	if m == nil {
		m = map[io.Closer]struct{}{}
		v.conns[owner] = m
	}
	m[c] = struct{}{}
	return true
}

func (v *VirtualAddress) untrack(owner string, c io.Closer) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.conns[owner], c)
}

// takeConns removes and returns the connections to owner; v.mu is held.
func (v *VirtualAddress) takeConns(owner string) []io.Closer {
	m := v.conns[owner]
	delete(v.conns, owner)
	out := make([]io.Closer, 0, len(m))
	for c := range m {
		out = append(out, c)
	}
	return out
}

func closeAll(cs []io.Closer) {
	for _, c := range cs {
		_ = c.Close()
	}
}

// trackedConn is a client's connection to the owner; closing it forgets it.
type trackedConn struct {
	net.Conn
	v     *VirtualAddress
	owner string
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.v.untrack(c.owner, c) })
	return c.Conn.Close()
}

// accept joins every connection accepted on ln to the owner until ln closes.
func (v *VirtualAddress) accept(ctx context.Context, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient accept error (e.g. too many files)
		}
		v.wg.Go(func() { v.join(ctx, c) })
	}
}

// join splices a client's connection with one to the owner.
func (v *VirtualAddress) join(ctx context.Context, client net.Conn) {
	name, target := v.Owner()
	if name == "" {
		_ = client.Close()
		return
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	up, err := v.cfg.Dial(dctx, "tcp", target)
	cancel()
	if err != nil {
		_ = client.Close()
		return
	}
	p := &pair{a: client, b: up}
	if !v.track(name, p) {
		_ = p.Close()
		return
	}
	defer v.untrack(name, p)
	done := make(chan struct{}, 2)
	for _, dir := range [][2]net.Conn{{up, client}, {client, up}} {
		v.wg.Go(func() {
			_, _ = io.Copy(dir[0], dir[1])
			done <- struct{}{}
		})
	}
	<-done // one side ended: end both (no half-close through the address)
	_ = p.Close()
	<-done
}

// pair is the two halves of a spliced connection.
type pair struct{ a, b net.Conn }

func (p *pair) Close() error {
	// Linger 0 resets the client's side, as a new owner would.
	if tc, ok := p.a.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return errors.Join(p.a.Close(), p.b.Close())
}
