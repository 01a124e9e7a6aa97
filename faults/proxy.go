package faults

import (
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// ProxyDialTimeout bounds how long a Proxy waits for its upstream connection
// (a dial into a blocked link hangs like a SYN into a black hole; a real
// TCP stack gives up too).
const ProxyDialTimeout = 30 * time.Second

// Proxy is a TCP listener on loopback whose every accepted connection is
// forwarded to one address through the Network, as a link from one
// component: it puts a program that does not dial through Network.Dialer —
// another process — under the same cuts and delays. A lock server running as
// its own process reaches each etcd member through a Proxy of its own, so
// that "lockserver-2 -> etcd-1" cuts that process's real traffic. Create it
// with Network.Proxy.
type Proxy struct {
	ln     net.Listener
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	target string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

// Proxy listens on 127.0.0.1 (a free port) and forwards every connection to
// target (host:port) as the link from -> the component named at target (see
// Name). Close it when done.
func (n *Network) Proxy(from, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{ln: ln, dial: n.Dialer(from), target: target, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's listening address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops listening, cuts every forwarded connection and returns when
// the proxy's goroutines are gone. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(down) {
			_ = down.Close()
			return
		}
		p.wg.Go(func() { p.forward(down) })
	}
}

// track registers a live connection; false once the proxy is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// forward dials the target through the network emulator and copies both
// ways until either side ends; then it closes both.
func (p *Proxy) forward(down net.Conn) {
	defer p.untrack(down)
	defer down.Close()
	ctx, cancel := context.WithTimeout(p.ctx, ProxyDialTimeout)
	up, err := p.dial(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		return // refused, or blocked past the timeout: the client sees its connection end
	}
	if !p.track(up) {
		_ = up.Close()
		return
	}
	defer p.untrack(up)
	defer up.Close()
	// When either direction ends, both do: the protocols behind a proxy
	// (HTTP/1.1, gRPC) never half-close, and a dead member must look dead.
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, down)
	go pipe(down, up)
	running := 2
	select {
	case <-done:
		running--
	case <-p.ctx.Done():
	}
	_ = up.Close()
	_ = down.Close()
	for ; running > 0; running-- {
		<-done
	}
}
