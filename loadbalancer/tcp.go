package loadbalancer

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// The tcp mode (Config.Mode "tcp", HAProxy's "mode tcp"): the balancer
// accepts a client's connection, picks a backend with the same Picker and
// health checks as the http mode, connects to it and copies bytes both
// ways without parsing them, until either side closes.
//
// What it decides, and when:
//   - The backend is chosen once per client connection, not per request:
//     every request a client sends on a kept-alive connection goes to the
//     same backend. Least-connections counts open connections, idle ones
//     included (BackendStats.InFlight).
//   - A backend whose health checks fail gets no new connections; the
//     connections already made to it stay until it or the client closes
//     them (HAProxy's default, without "on-marked-down shutdown-sessions").
//   - A connection to a backend that is refused (or fails to be made within
//     2s) counts toward Fall and the next eligible backend is tried: nothing
//     was forwarded yet. When no backend can be reached, the client's
//     connection is reset. The balancer cannot answer 503: it does not speak
//     HTTP. A client that had written its request sees its connection reset
//     after writing, which lockserver.Client reports as ErrOutcomeUnknown
//     for writes (nothing reached a lock server, but the client cannot know).
//   - When a backend crashes, the connections through it are closed (reset
//     if the backend's side failed, closed if it closed): a request in flight
//     on one ends without an answer, ErrOutcomeUnknown for lockserver.Client,
//     never resent; an idle kept-alive connection is closed and the client's
//     next request opens a new one, to a backend that is up.
//
// What it gives up against the http mode: a per-request answer of its own
// (502 outcome_unknown, 503 unavailable with Retry-After), the retry of a
// request on another backend (in tcp mode only the connection is retried),
// per-request balancing, X-Locksim-Backend, answers by status in the
// metrics, and MetricsPath and CheckPath on the main address (see
// Config.AdminListen).

// pipe is one client connection and, once connected, its backend's.
type pipe struct {
	client net.Conn
	// backend is set once the backend's connection is made (under b.mu, so
	// that Close sees it).
	backend net.Conn
	// flow counts the chunks copied, times two, plus 1 while the last one
	// went from the client to the backend (a request may be waiting for its
	// answer). Shutdown closes a pipe whose flow shows an answer last and
	// has not moved for a poll interval.
	flow atomic.Uint64
}

// moved records one chunk copied; toBackend says its direction.
func (p *pipe) moved(toBackend bool) {
	dir := uint64(0)
	if toBackend {
		dir = 1
	}
	for {
		old := p.flow.Load()
		if p.flow.CompareAndSwap(old, (old>>1+1)<<1|dir) {
			return
		}
	}
}

// idle reports whether the last chunk went to the client (or none went).
func idle(flow uint64) bool { return flow&1 == 0 }

// acceptTCP serves every connection accepted on ln until ln closes.
func (b *Balancer) acceptTCP(ctx context.Context, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient accept error (e.g. too many open files).
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		b.conns.Add(1)
		go func() {
			defer b.conns.Done()
			b.serveConn(ctx, c)
		}()
	}
}

// serveConn connects a client's connection to a backend and copies bytes
// both ways until one side closes.
func (b *Balancer) serveConn(ctx context.Context, client net.Conn) {
	p := &pipe{client: client}
	if !b.trackPipe(p) {
		_ = client.Close()
		return
	}
	defer b.untrackPipe(p)
	// Paused: the connection is accepted (by the kernel) and waits here.
	if b.pause.check(ctx) != nil {
		_ = client.Close()
		return
	}
	be, up := b.dialBackend(ctx)
	if up == nil {
		if ctx.Err() == nil {
			b.metrics.unserved.Add(1)
		}
		resetConn(client)
		return
	}
	defer be.inFlight.Add(-1)
	if !b.attachBackend(p, up) {
		_ = up.Close()
		_ = client.Close()
		return
	}
	b.splice(ctx, be, p)
}

// dialBackend connects to the next eligible backend, trying the others
// after a refused connection; it returns nil when none could be reached
// (or ctx ended). The chosen backend's inFlight has been incremented.
func (b *Balancer) dialBackend(ctx context.Context) (*backend, net.Conn) {
	a := b.attempts.Get().(*attempt)
	defer b.release(a)
	clear(a.tried)
	for {
		for i, be := range b.backends {
			a.views[i] = BackendView{Eligible: !a.tried[i] && be.up.Load(), InFlight: be.inFlight.Load()}
		}
		i, ok := b.picker.Pick(a.views)
		if !ok {
			return nil, nil
		}
		a.tried[i] = true
		be := b.backends[i]
		be.requests.Add(1)
		be.inFlight.Add(1)
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		up, err := b.cfg.Dial(dctx, "tcp", be.addr)
		cancel()
		if err == nil {
			return be, up
		}
		be.inFlight.Add(-1)
		if ctx.Err() != nil {
			return nil, nil // closing: not the backend's fault
		}
		be.failures.Add(1)
		b.record(be, err, false) // counts toward Fall, as in the http mode
	}
}

// splice copies both ways. The client's end of input is passed on as a
// half-close; the backend's end (or any error) ends the whole pipe: a
// backend that failed resets the client, one that closed closes it.
func (b *Balancer) splice(ctx context.Context, be *backend, p *pipe) {
	upDone := make(chan struct{})
	b.conns.Add(1)
	go func() {
		defer b.conns.Done()
		defer close(upDone)
		err := b.copyBytes(ctx, p, p.backend, p.client, true)
		if errors.Is(err, io.EOF) && closeWrite(p.backend) {
			return // the client is done sending; answers still flow
		}
		_ = p.backend.Close()
	}()
	err := b.copyBytes(ctx, p, p.client, p.backend, false)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
		var werr writeError
		if !errors.As(err, &werr) { // the backend's side failed, not the client's
			be.failures.Add(1)
			resetConn(p.client)
		}
	}
	_ = p.client.Close()
	_ = p.backend.Close()
	<-upDone
}

// writeError marks a copy that failed writing (the destination's side).
type writeError struct{ error }

func (e writeError) Unwrap() error { return e.error }

// copyBytes copies src to dst until src ends (io.EOF) or either fails. A
// paused balancer holds what it read until resumed.
func (b *Balancer) copyBytes(ctx context.Context, p *pipe, dst, src net.Conn, toBackend bool) error {
	buf := b.buffers.Get()
	defer b.buffers.Put(buf)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if toBackend {
				p.moved(true) // a request may now wait for its answer
			}
			if perr := b.pause.check(ctx); perr != nil {
				return perr
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return writeError{werr}
			}
			if !toBackend {
				p.moved(false)
			}
		}
		if err != nil {
			return err
		}
	}
}

// closeWrite half-closes c and reports whether it could (a *net.TCPConn
// can; a wrapped connection may not).
func closeWrite(c net.Conn) bool {
	cw, ok := c.(interface{ CloseWrite() error })
	return ok && cw.CloseWrite() == nil
}

// resetConn closes c with a reset (linger 0) when it is a TCP connection,
// as a proxy that gives up on a connection does.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// trackPipe registers p so that Close can close it; false once closed.
func (b *Balancer) trackPipe(p *pipe) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.pipes[p] = struct{}{}
	return true
}

// attachBackend records p's backend connection; false once closed.
func (b *Balancer) attachBackend(p *pipe, up net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	p.backend = up
	return true
}

func (b *Balancer) untrackPipe(p *pipe) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pipes, p)
}

// closePipes closes every open pipe (both sides); b.closed is set.
func (b *Balancer) closePipes() {
	b.mu.Lock()
	open := make([]*pipe, 0, len(b.pipes))
	for p := range b.pipes {
		open = append(open, p)
	}
	b.mu.Unlock()
	for _, p := range open {
		closePipe(b, p)
	}
}

// closePipe closes both sides of p.
func closePipe(b *Balancer, p *pipe) {
	b.mu.Lock()
	up := p.backend
	b.mu.Unlock()
	_ = p.client.Close()
	if up != nil {
		_ = up.Close()
	}
}

// drainPoll is how often a tcp-mode Shutdown looks for idle connections.
const drainPoll = 20 * time.Millisecond

// shutdownTCP closes the listener, then closes each connection once it is
// idle — its last bytes went to the client and nothing moved for a poll
// interval — until none is left or ctx ends. A connection that never
// carried anything is idle too. The balancer cannot see where requests
// begin and end; a request/response protocol such as the lock API's is
// between requests then.
func (b *Balancer) shutdownTCP(ctx context.Context) error {
	b.mu.Lock()
	ln := b.ln
	b.mu.Unlock()
	_ = ln.Close()
	seen := map[*pipe]uint64{}
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for {
		b.mu.Lock()
		open := make([]*pipe, 0, len(b.pipes))
		for p := range b.pipes {
			open = append(open, p)
		}
		b.mu.Unlock()
		if len(open) == 0 {
			return nil
		}
		next := make(map[*pipe]uint64, len(open))
		for _, p := range open {
			f := p.flow.Load()
			if last, ok := seen[p]; ok && last == f && idle(f) {
				closePipe(b, p)
				continue
			}
			next[p] = f
		}
		seen = next
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
