package sim

import (
	"net"
	"sync"
)

// freezer stops every byte into and out of a component while it is frozen:
// the in-process stand-in for SIGSTOP for a lock server built by a
// LockServerFunc, whose goroutines the sandbox cannot stop. Its HTTP
// connections and its connections to etcd go through frozen conns: a read
// holds what arrived, a write waits, until the thaw. (A stopped process's
// kernel, too, accepts connections and buffers bytes for it.)
type freezer struct {
	mu     sync.Mutex
	thawed chan struct{} // nil while not frozen; closed by thaw
}

func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.thawed == nil {
		f.thawed = make(chan struct{})
	}
}

func (f *freezer) thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.thawed != nil {
		close(f.thawed)
		f.thawed = nil
	}
}

// wait blocks while frozen; it fails once closed is closed.
func (f *freezer) wait(closed <-chan struct{}) error {
	f.mu.Lock()
	ch := f.thawed
	f.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-closed:
		return net.ErrClosed
	}
}

// conn wraps c so that it stalls while frozen.
func (f *freezer) conn(c net.Conn) net.Conn {
	return &frozenConn{Conn: c, f: f, closed: make(chan struct{})}
}

// listener wraps every accepted connection.
func (f *freezer) listener(ln net.Listener) net.Listener { return &frozenListener{Listener: ln, f: f} }

type frozenListener struct {
	net.Listener
	f *freezer
}

func (l *frozenListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.f.conn(c), nil
}

type frozenConn struct {
	net.Conn
	f      *freezer
	once   sync.Once
	closed chan struct{}
}

func (c *frozenConn) Read(b []byte) (int, error) {
	if err := c.f.wait(c.closed); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	if werr := c.f.wait(c.closed); werr != nil { // what arrived during a freeze is held
		return 0, werr
	}
	return n, err
}

func (c *frozenConn) Write(b []byte) (int, error) {
	if err := c.f.wait(c.closed); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *frozenConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
