package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/locksim/locksim/conformance"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/lockserver"
	"github.com/locksim/locksim/sim/external"
)

// ErrBadLockServer is wrapped by every error about a lock server that is
// not locksim's own (Config.LockServerCmd, Config.LockServerFunc): it does
// not start, does not answer GET /health with 200 within
// Config.ReadyTimeout, or does not answer the API with the documented JSON.
// The message names the server and the problem in one line.
var ErrBadLockServer = errors.New("sim: bad lock server")

// FaultExit is the fault-log event of a lock server process that ended on
// its own (it crashed, or exited): nobody injected it, but the timeline
// shows it like a crash, from the moment it died until it is restarted.
const FaultExit = "exit"

// LockServerEnv is what a LockServerFunc gets to build one lock server.
type LockServerEnv struct {
	// Name is the lock server's name, lockserver-N.
	Name string
	// Endpoints are the etcd client URLs.
	Endpoints []string
	// Dial connects to an etcd member as this lock server, through the
	// sandbox's network emulator: give it to the etcd client (for clientv3:
	// DialOptions: []grpc.DialOption{grpc.WithContextDialer(env.Dial)}) so
	// that partitions and delays between this server and a member cut its
	// traffic, and a pause freezes it.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// LockServerFunc builds a lock server of the caller's own, in this process:
// the handler of the lock API, and what to close when the server crashes
// (nil when nothing). It is called at every start and restart of every
// lock server. The sandbox serves the handler at the server's address; a
// crash closes the listener, its connections and the io.Closer; a pause
// holds every byte into and out of the server (its HTTP connections and
// every connection made with Env.Dial) until the resume.
type LockServerFunc func(ctx context.Context, env LockServerEnv) (http.Handler, io.Closer, error)

// running is one started lock server of a slot: locksim's own, one built by
// a LockServerFunc, or a process of LockServerCmd.
type running interface {
	Pause()
	Resume()
	// Close stops it like a crash.
	Close() error
	// Requests is how many requests it received, when it can tell.
	Requests() (uint64, bool)
}

// ownServer is locksim's own lock server.
type ownServer struct{ *lockserver.Server }

func (s ownServer) Requests() (uint64, bool) { return uint64(max(0, s.Stats().Requests)), true }

// procServer is a process of LockServerCmd.
type procServer struct{ *external.Process }

func (procServer) Requests() (uint64, bool) { return 0, false }

// funcServer serves a LockServerFunc's handler.
type funcServer struct {
	hs       *http.Server
	done     chan struct{} // closed when Serve returned
	closer   io.Closer
	fr       *freezer
	requests atomic.Uint64
	once     sync.Once
	err      error
}

func (s *funcServer) Pause()                   { s.fr.freeze() }
func (s *funcServer) Resume()                  { s.fr.thaw() }
func (s *funcServer) Requests() (uint64, bool) { return s.requests.Load(), true }

func (s *funcServer) Close() error {
	s.once.Do(func() {
		s.err = s.hs.Close()
		<-s.done
		if s.closer != nil {
			s.err = errors.Join(s.err, s.closer.Close())
		}
	})
	return s.err
}

// startServer starts the lock server of slot at addr ("127.0.0.1:0" the
// first time) and returns it with the address it serves on. It does not
// change the slot.
func (sb *Sandbox) startServer(ctx context.Context, slot *serverSlot, addr string) (running, string, error) {
	switch {
	case sb.cfg.LockServerCmd != "":
		return sb.startProcess(ctx, slot, addr)
	case sb.cfg.LockServerFunc != nil:
		return sb.startFunc(ctx, slot, addr)
	}
	dial := sb.net.Dialer(slot.name)
	s, err := lockserver.New(lockserver.Config{
		Name:        slot.name,
		Endpoints:   sb.etcdURLs,
		Listen:      addr,
		EtcdTimeout: sb.cfg.EtcdTimeout,
		Unsafe:      sb.cfg.Unsafe,
		APIKeys:     sb.keys,
		RateLimit:   sb.cfg.RateLimit,
		DialContext: func(ctx context.Context, addr string) (net.Conn, error) {
			return dial(ctx, "tcp", addr)
		},
	})
	if err != nil {
		return nil, "", err
	}
	if err := s.Start(ctx); err != nil {
		return nil, "", fmt.Errorf("%s: %w", slot.name, err)
	}
	return ownServer{s}, s.Addr(), nil
}

// startProcess runs LockServerCmd for slot, against its own etcd proxies,
// and returns once it accepts connections (within Config.ReadyTimeout).
func (sb *Sandbox) startProcess(ctx context.Context, slot *serverSlot, addr string) (running, string, error) {
	if addr == "127.0.0.1:0" {
		free, err := freeAddr()
		if err != nil {
			return nil, "", err
		}
		addr = free
	}
	etcd := make([]string, len(slot.proxies))
	for i, p := range slot.proxies {
		etcd[i] = "http://" + p.Addr()
	}
	var p *external.Process
	p, err := external.New(external.Config{
		Name: slot.name, Command: sb.cfg.LockServerCmd, Listen: addr, Etcd: etcd, LogDir: sb.logDir,
		OnExit: func(how string) { sb.exited(slot, p, how) },
	})
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrBadLockServer, err)
	}
	ctx, cancel := context.WithTimeout(ctx, sb.cfg.ReadyTimeout)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrBadLockServer, err)
	}
	return procServer{p}, addr, nil
}

// startFunc builds a lock server with LockServerFunc and serves it.
func (sb *Sandbox) startFunc(ctx context.Context, slot *serverSlot, addr string) (running, string, error) {
	fr := &freezer{}
	dial := sb.net.Dialer(slot.name)
	env := LockServerEnv{Name: slot.name, Endpoints: sb.EtcdURLs(), Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := dial(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return fr.conn(c), nil
	}}
	h, closer, err := sb.cfg.LockServerFunc(ctx, env)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: the lock server function failed: %w", ErrBadLockServer, slot.name, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if closer != nil {
			_ = closer.Close()
		}
		return nil, "", fmt.Errorf("%s: listen %s: %w", slot.name, addr, err)
	}
	s := &funcServer{done: make(chan struct{}), closer: closer, fr: fr}
	s.hs = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.requests.Add(1)
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		defer close(s.done)
		_ = s.hs.Serve(fr.listener(ln))
	}()
	return s, ln.Addr().String(), nil
}

// ready waits until a lock server that is not locksim's own answers GET
// /health with 200 (within Config.ReadyTimeout) and answers GET
// /locks/{id} with the documented JSON.
func (sb *Sandbox) ready(ctx context.Context, slot *serverSlot, r running) error {
	ctx, cancel := context.WithTimeout(ctx, sb.cfg.ReadyTimeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + slot.addr
	if p, ok := r.(procServer); ok {
		if err := p.WaitHealthy(ctx); err != nil {
			return fmt.Errorf("%w: %w", ErrBadLockServer, err)
		}
	} else {
		c := &lockserver.Client{BaseURL: url, HTTP: hc}
		start := time.Now()
		for {
			err := c.Health(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%w: %s did not answer GET /health with 200 within %s (last: %v)",
					ErrBadLockServer, slot.name, time.Since(start).Round(100*time.Millisecond), err)
			}
			pollPause(ctx, 50*time.Millisecond)
		}
	}
	if err := conformance.Probe(ctx, hc, url); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadLockServer, slot.name, err)
	}
	return nil
}

// exited records that the process of slot ended on its own: the slot is
// down until a restart, and the fault log says so.
func (sb *Sandbox) exited(slot *serverSlot, p *external.Process, how string) {
	sb.mu.Lock()
	pr, ok := slot.run.(procServer)
	ours := ok && pr.Process == p && !sb.closed
	if ours {
		slot.run = nil
	}
	sb.mu.Unlock()
	if !ours {
		return // killed by a fault, or not started yet (Start reports it)
	}
	_, stderr := p.LogPaths()
	sb.faults.Record(faults.Event{
		Fault: FaultExit, Target: slot.name, Resolved: slot.name, Source: "the process itself",
		Note: fmt.Sprintf("%s %s on its own (its standard error: %s)", slot.name, how, stderr),
	})
}

// etcdProxies gives a process of LockServerCmd its own way to each etcd
// member: traffic through proxy i is the link slot -> etcd-(i+1).
func (sb *Sandbox) etcdProxies(slot *serverSlot) error {
	for _, u := range sb.etcdURLs {
		p, err := sb.net.Proxy(slot.name, hostPort(u))
		if err != nil {
			return fmt.Errorf("%s: etcd proxy: %w", slot.name, err)
		}
		slot.proxies = append(slot.proxies, p)
	}
	return nil
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// pollPause waits d or until ctx ends, between two polls of a condition.
func pollPause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
