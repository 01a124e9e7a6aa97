package loadbalancer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by this package.
var (
	// ErrNoBackend is what the 503 "unavailable" answer stands for: no
	// backend is up, or every one refused the connection. No method returns
	// it today; it is exported for callers mapping errors.
	ErrNoBackend = errors.New("loadbalancer: no healthy backend")
	// ErrInvalidConfig wraps every validation error of [New].
	ErrInvalidConfig = errors.New("loadbalancer: invalid config")
	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("loadbalancer: closed")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("loadbalancer: already started")
	// ErrHealthCheck wraps the reason a health check failed.
	ErrHealthCheck = errors.New("loadbalancer: health check failed")
)

// Defaults filled in by [New].
const (
	DefaultListen         = "127.0.0.1:0"
	DefaultHealthPath     = "/health"
	DefaultHealthInterval = 500 * time.Millisecond
	DefaultHealthTimeout  = time.Second
	DefaultRise           = 2
	DefaultFall           = 3
	DefaultMode           = ModeHTTP

	dialTimeout = 2 * time.Second
)

// Modes accepted by [Config].Mode.
const (
	// ModeHTTP parses every request: it can retry a request whose
	// connection was refused, answer 502 outcome_unknown or 503 unavailable
	// itself, and count answers by status (HAProxy's "mode http").
	ModeHTTP = "http"
	// ModeTCP balances connections and copies their bytes without parsing
	// them (HAProxy's "mode tcp"); see tcp.go.
	ModeTCP = "tcp"
)

// Config configures a [Balancer]. Zero fields take the documented defaults.
type Config struct {
	// Listen is the address Start listens on. Default "127.0.0.1:0".
	Listen string
	// Mode is "http" (default) or "tcp".
	Mode string
	// AdminListen, when set, is a second address on which Start serves
	// MetricsPath and CheckPath (and nothing else), in either mode: in tcp
	// mode the only way to reach them. Default: none.
	AdminListen string
	// Backends are the lock servers' base URLs, e.g. "http://127.0.0.1:4001".
	// At least one is required.
	Backends []string
	// Policy is "round-robin" (default) or "least-connections".
	Policy string
	// HealthPath is the path of the active health check. Default "/health".
	HealthPath string
	// HealthInterval is the time between two checks of one backend
	// (HAProxy's "check inter"). Default 500ms.
	HealthInterval time.Duration
	// HealthTimeout bounds one check. Default 1s.
	HealthTimeout time.Duration
	// Rise is the number of consecutive successful checks that bring a down
	// backend up. Default 2.
	Rise int
	// Fall is the number of consecutive failures (failed checks, or refused
	// connections of proxied requests) that take an up backend down.
	// Default 3.
	Fall int
	// Transport carries the health checks. Default: an *http.Transport that
	// ignores proxy environment variables, keeps up to 512 idle connections
	// per backend and dials with Dial.
	Transport http.RoundTripper
	// Dial connects to a backend's host:port: the http mode's connections
	// for proxied requests (kept alive, up to 512 idle per backend), every
	// client connection of the tcp mode, and the default Transport's
	// connections. Default: a net.Dialer with a 2s timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now stamps health checks. Default time.Now.
	Now func() time.Time
}

// BackendStats is a snapshot of one backend as the balancer sees it.
type BackendStats struct {
	URL string
	// Up reports whether the backend takes new requests.
	Up bool
	// Requests counts the requests forwarded to it, including attempts
	// whose connection was refused.
	Requests uint64
	// Failures counts forwarded requests that ended in a transport error
	// (refused connection, or a connection lost before the full response).
	Failures uint64
	// InFlight is the number of requests outstanding on it now.
	InFlight int64
	// LastCheck is when the last health check finished (zero before one).
	LastCheck time.Time
	// LastError is the last health check's error ("" if it passed).
	LastError string
}

// Balancer is an HTTP reverse proxy in front of the lock servers.
type Balancer struct {
	cfg      Config
	backends []*backend
	picker   Picker
	handler  http.Handler
	attempts sync.Pool      // *attempt
	buffers  *bufferPool    // copy buffers
	upstream sync.WaitGroup // the http mode's connection watchers
	metrics  *metrics
	pause    gate

	mu      sync.Mutex
	started bool
	closed  bool
	ln      net.Listener
	srv     *http.Server // http mode
	admin   *http.Server // on AdminListen
	adminLn net.Listener
	pipes   map[*pipe]struct{} // tcp mode: open connections
	cancel  context.CancelFunc
	wg      sync.WaitGroup // serve and health goroutines
	conns   sync.WaitGroup // server connections, see Close
	closeCh chan struct{}  // closed when Close finished
}

// backend is one lock server with its proxy, health and counters.
type backend struct {
	url       string
	addr      string // host:port
	healthURL string
	host      string   // the Host header of proxied requests
	prefix    string   // the backend URL's path, prepended to requests'
	header    []string // value of X-Locksim-Backend, shared read-only
	pool      *upPool  // http mode: kept-alive connections

	up       atomic.Bool
	requests atomic.Uint64
	failures atomic.Uint64
	inFlight atomic.Int64
	codes    statusCounts // answers it gave, by status

	mu        sync.Mutex
	health    healthState
	lastCheck time.Time
	lastErr   string
}

// New validates cfg, fills its defaults and returns a balancer whose
// backends all start up (the sandbox wants traffic at once; the first
// checks run as soon as Start is called). Handler works before Start.
func New(cfg Config) (*Balancer, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	picker, err := NewPicker(cfg.Policy)
	if err != nil {
		return nil, err
	}
	b := &Balancer{cfg: cfg, picker: picker, closeCh: make(chan struct{}), pipes: map[*pipe]struct{}{}, buffers: newBufferPool()}
	for _, raw := range cfg.Backends {
		be, err := newBackend(raw, cfg, &b.upstream)
		if err != nil {
			return nil, err
		}
		b.backends = append(b.backends, be)
	}
	n := len(b.backends)
	b.attempts.New = func() any {
		return &attempt{views: make([]BackendView, n), tried: make([]bool, n)}
	}
	b.metrics = newMetrics(b)
	b.handler = http.HandlerFunc(b.serveHTTP)
	return b, nil
}

func (c *Config) fill() error {
	if len(c.Backends) == 0 {
		return fmt.Errorf("%w: no backends", ErrInvalidConfig)
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Policy == "" {
		c.Policy = PolicyRoundRobin
	}
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	if c.Mode != ModeHTTP && c.Mode != ModeTCP {
		return fmt.Errorf("%w: unknown mode %q (want %q or %q)", ErrInvalidConfig, c.Mode, ModeHTTP, ModeTCP)
	}
	if c.HealthPath == "" {
		c.HealthPath = DefaultHealthPath
	}
	if !strings.HasPrefix(c.HealthPath, "/") {
		return fmt.Errorf("%w: health path %q does not start with /", ErrInvalidConfig, c.HealthPath)
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = DefaultHealthInterval
	}
	if c.HealthTimeout == 0 {
		c.HealthTimeout = DefaultHealthTimeout
	}
	if c.HealthInterval < 0 || c.HealthTimeout < 0 {
		return fmt.Errorf("%w: negative health interval or timeout", ErrInvalidConfig)
	}
	if c.Rise == 0 {
		c.Rise = DefaultRise
	}
	if c.Fall == 0 {
		c.Fall = DefaultFall
	}
	if c.Rise < 0 || c.Fall < 0 {
		return fmt.Errorf("%w: negative rise or fall", ErrInvalidConfig)
	}
	if c.Dial == nil {
		c.Dial = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	if c.Transport == nil {
		c.Transport = newTransport(c.Dial)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Backends = append([]string(nil), c.Backends...)
	return nil
}

func newTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	return &http.Transport{
		Proxy:               nil, // never the environment's proxy: backends are local
		DialContext:         dial,
		MaxIdleConns:        0, // no global limit
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
	}
}

func newBackend(raw string, cfg Config, watchers *sync.WaitGroup) (*backend, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: backend %q: %w", ErrInvalidConfig, raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: backend %q: want http(s)://host:port", ErrInvalidConfig, raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: backend %q: query or fragment not allowed", ErrInvalidConfig, raw)
	}
	base := strings.TrimSuffix(u.String(), "/")
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	serverName := ""
	if u.Scheme == "https" {
		serverName = u.Hostname()
	}
	be := &backend{
		url:       base,
		addr:      addr,
		host:      u.Host,
		prefix:    strings.TrimSuffix(u.Path, "/"),
		healthURL: base + cfg.HealthPath,
		header:    []string{base},
		pool:      newUpPool(addr, serverName, cfg.Dial, watchers),
	}
	be.up.Store(true)
	be.health.up = true
	return be, nil
}

// Start listens on Listen (and AdminListen), serves the proxy and starts
// the health checks. ctx bounds the start only; the balancer then runs
// until Close.
func (b *Balancer) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return ErrClosed
	case b.started:
		return ErrStarted
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", b.cfg.Listen)
	if err != nil {
		return fmt.Errorf("loadbalancer: listen %s: %w", b.cfg.Listen, err)
	}
	var adminLn net.Listener
	if b.cfg.AdminListen != "" {
		if adminLn, err = lc.Listen(ctx, "tcp", b.cfg.AdminListen); err != nil {
			_ = ln.Close()
			return fmt.Errorf("loadbalancer: listen %s (admin): %w", b.cfg.AdminListen, err)
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	b.started, b.ln, b.cancel = true, ln, cancel
	if b.cfg.Mode == ModeTCP {
		b.wg.Go(func() { b.acceptTCP(runCtx, ln) })
	} else {
		b.srv = b.newServer(runCtx, b.handler)
		b.wg.Go(func() { _ = b.srv.Serve(ln) }) // returns http.ErrServerClosed on Close
	}
	if adminLn != nil {
		b.admin, b.adminLn = b.newServer(runCtx, http.HandlerFunc(b.serveAdmin)), adminLn
		b.wg.Go(func() { _ = b.admin.Serve(adminLn) })
	}
	b.wg.Add(len(b.backends))
	for _, be := range b.backends {
		go func() {
			defer b.wg.Done()
			b.healthLoop(runCtx, be)
		}()
	}
	return nil
}

// newServer is an http.Server for h whose requests are cancelled by Close
// and whose connections Close waits for.
func (b *Balancer) newServer(runCtx context.Context, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          discardLog,
		BaseContext:       func(net.Listener) context.Context { return runCtx },
		ConnState:         b.trackConn,
	}
}

// trackConn counts the server's connections so that Close can wait for
// their goroutines (http.Server.Close does not wait for handlers). StateNew
// is reported by the Serve goroutine before the connection's goroutine
// starts, so every Add happens before Serve returns.
func (b *Balancer) trackConn(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		b.conns.Add(1)
	case http.StateClosed, http.StateHijacked:
		b.conns.Done()
	}
}

// Close stops the balancer abruptly: it closes the listener, every client
// connection and every connection to a backend, cancels requests in flight
// and stops the health checks. It returns when all of the balancer's
// goroutines are gone and closes the idle connections of Transport. Close is idempotent; later
// and concurrent calls wait for the first to finish.
func (b *Balancer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		<-b.closeCh
		return nil
	}
	b.closed = true
	ln, srv, admin, cancel := b.ln, b.srv, b.admin, b.cancel
	b.mu.Unlock()
	// A paused balancer's requests see their context cancelled below and
	// give up; the gate itself stays as it is.

	var err error
	if cancel != nil {
		if srv != nil {
			err = srv.Close() // drop every client connection first, like a crash
		} else if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
		if admin != nil {
			_ = admin.Close()
		}
		b.closePipes() // tcp mode: every client and backend connection
		cancel()       // then cancel requests in flight and health checks
	}
	for _, be := range b.backends {
		be.pool.close() // http mode: connections to backends, busy ones too
	}
	if cancel != nil {
		b.wg.Wait()    // Serve and accept have returned: no more conns.Add
		b.conns.Wait() // every handler and pipe has returned
	}
	b.upstream.Wait()
	if ci, ok := b.cfg.Transport.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
	close(b.closeCh)
	if err != nil {
		return fmt.Errorf("loadbalancer: close: %w", err)
	}
	return nil
}

// Addr returns the listening address ("" before Start).
func (b *Balancer) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln == nil {
		return ""
	}
	return b.ln.Addr().String()
}

// AdminAddr returns the address of AdminListen's listener ("" before Start
// or without one).
func (b *Balancer) AdminAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.adminLn == nil {
		return ""
	}
	return b.adminLn.Addr().String()
}

// Mode returns the balancer's mode, "http" or "tcp".
func (b *Balancer) Mode() string { return b.cfg.Mode }

// URL returns "http://" + Addr() ("" before Start).
func (b *Balancer) URL() string {
	if a := b.Addr(); a != "" {
		return "http://" + a
	}
	return ""
}

// Pause freezes the balancer like SIGSTOP: requests already in flight
// stop before their answer is written back, new ones before they are
// forwarded, and health checks stop, until Resume. Connections are still
// accepted (by the kernel, as for a stopped process).
func (b *Balancer) Pause() { b.pause.pause() }

// Resume undoes Pause.
func (b *Balancer) Resume() { b.pause.resume() }

// Paused reports whether the balancer is paused.
func (b *Balancer) Paused() bool { return b.pause.paused() }

// Handler returns the http mode's proxy handler (whatever Mode says), for
// serving it elsewhere. It works before Start; without Start no health
// checks run. Close closes its connections to the backends.
func (b *Balancer) Handler() http.Handler { return b.handler }

// Stats returns a snapshot of every backend, in Config.Backends order.
func (b *Balancer) Stats() []BackendStats {
	out := make([]BackendStats, len(b.backends))
	for i, be := range b.backends {
		be.mu.Lock()
		last, lastErr := be.lastCheck, be.lastErr
		be.mu.Unlock()
		out[i] = BackendStats{
			URL:       be.url,
			Up:        be.up.Load(),
			Requests:  be.requests.Load(),
			Failures:  be.failures.Load(),
			InFlight:  be.inFlight.Load(),
			LastCheck: last,
			LastError: lastErr,
		}
	}
	return out
}
