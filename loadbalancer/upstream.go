package loadbalancer

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
)

// The http mode's connections to one backend: kept alive, reused for one
// request at a time, most recently used first.
//
// A connection that waits in the pool must be known dead as soon as its
// backend closes it (a crashed or restarted lock server), or the next
// request sent on it would be lost after it was written — an
// outcome_unknown for nothing. So every connection has a watcher goroutine
// that waits for its next byte (bufio.Reader.Peek) for its whole life:
// while the connection is idle, an end of stream takes it out of the pool
// at once; while a request is in flight, the first byte of the answer
// wakes the request, which then reads the answer itself and lets the
// watcher wait again once the answer is consumed. This replaces
// http.Transport's read and write loops with one goroutine and two
// channel operations per request, and no allocation.

const (
	upReadBuffer  = 8 << 10 // also the longest response header line
	upWriteBuffer = 4 << 10
	// maxIdlePerBackend is the most idle connections kept per backend.
	maxIdlePerBackend = 512
)

// States of an upConn.
const (
	connBusy int32 = iota // owned by a request
	connIdle              // in the pool
	connDead              // discarded
)

// errPoolClosed is the dial error of a closed balancer.
var errPoolClosed = errors.New("loadbalancer: closed")

// upPool is one backend's connections.
type upPool struct {
	addr       string // host:port to dial
	serverName string // for https backends; "" for http
	dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	wg         *sync.WaitGroup // the watchers (the balancer's conns group)

	mu     sync.Mutex
	idle   []*upConn
	all    map[*upConn]struct{}
	closed bool
}

// upConn is one connection to a backend.
type upConn struct {
	pool  *upPool
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	state atomic.Int32
	// peeked carries the watcher's result: nil when a byte is there to
	// read, else why the connection ended. At most one is pending: the
	// watcher sends once, then waits for resume.
	peeked chan error
	resume chan struct{} // the owner consumed the answer: wait again
	quit   chan struct{} // closed when the connection is discarded
	once   sync.Once
	num    [24]byte // scratch for formatting numbers
}

func newUpPool(addr, serverName string, dial func(ctx context.Context, network, addr string) (net.Conn, error), wg *sync.WaitGroup) *upPool {
	return &upPool{addr: addr, serverName: serverName, dial: dial, wg: wg, all: map[*upConn]struct{}{}}
}

// get returns an idle connection (reused true) or a new one. Its error is
// a dial error (*net.OpError with Op "dial") when nothing could be sent.
func (p *upPool) get(ctx context.Context) (c *upConn, reused bool, err error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, false, &net.OpError{Op: "dial", Net: "tcp", Err: errPoolClosed}
		}
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c = p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if !c.state.CompareAndSwap(connIdle, connBusy) {
			continue // its watcher found it dead meanwhile
		}
		select {
		case <-c.peeked: // closed, failed, or bytes nobody asked for
			c.discard()
			continue
		default:
		}
		return c, true, nil
	}
	c, err = p.dialConn(ctx)
	return c, false, err
}

func (p *upPool) dialConn(ctx context.Context) (*upConn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	nc, err := p.dial(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	if p.serverName != "" {
		tc := tls.Client(nc, &tls.Config{ServerName: p.serverName, NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("tls handshake: %w", err)}
		}
		nc = tc
	}
	c := &upConn{
		pool: p, nc: nc,
		br:     bufio.NewReaderSize(nc, upReadBuffer),
		bw:     bufio.NewWriterSize(nc, upWriteBuffer),
		peeked: make(chan error, 1),
		resume: make(chan struct{}, 1),
		quit:   make(chan struct{}),
	}
	c.state.Store(connBusy)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = nc.Close()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errPoolClosed}
	}
	p.all[c] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	go c.watch()
	return c, nil
}

// put returns a connection whose answer was read in full to the pool.
func (p *upPool) put(c *upConn) {
	p.mu.Lock()
	if p.closed || len(p.idle) >= maxIdlePerBackend {
		p.mu.Unlock()
		c.discard()
		return
	}
	c.state.Store(connIdle)
	p.idle = append(p.idle, c)
	p.mu.Unlock()
	c.resume <- struct{}{} // never blocks: one resume per answer consumed
}

// close discards every connection, idle or busy, and refuses new ones.
func (p *upPool) close() {
	p.mu.Lock()
	p.closed = true
	all := make([]*upConn, 0, len(p.all))
	for c := range p.all {
		all = append(all, c)
	}
	p.mu.Unlock()
	for _, c := range all {
		c.discard()
	}
}

// watch waits for the connection's next byte, again and again (see the
// comment at the top of the file).
func (c *upConn) watch() {
	defer c.pool.wg.Done()
	for {
		_, err := c.br.Peek(1)
		c.peeked <- err
		if err != nil {
			if c.state.CompareAndSwap(connIdle, connDead) {
				c.discard() // closed while idle: out of the pool now
			}
			return
		}
		select {
		case <-c.resume:
		case <-c.quit:
			return
		}
	}
}

// discard closes the connection and forgets it; its watcher ends.
func (c *upConn) discard() {
	c.once.Do(func() {
		c.state.Store(connDead)
		close(c.quit)
		_ = c.nc.Close()
		p := c.pool
		p.mu.Lock()
		delete(p.all, c)
		if i := slices.Index(p.idle, c); i >= 0 {
			p.idle = slices.Delete(p.idle, i, i+1)
		}
		p.mu.Unlock()
	})
}

// awaitAnswer waits until the answer's first byte arrived (nil), the
// connection ended, or ctx ended.
func (c *upConn) awaitAnswer(ctx context.Context) error {
	select {
	case err := <-c.peeked:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
