package lockserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
)

// UnsafeCheckThenSet selects the deliberately broken acquire (a linearizable
// Get, then, if the key is absent, an unconditional Put). Negative control only.
const UnsafeCheckThenSet = "check-then-set"

// Config configures a Server. Zero values get the documented defaults.
type Config struct {
	// Name identifies the server in logs and the /health body. Default "lockserver".
	Name string
	// Endpoints are the etcd client URLs. Required.
	Endpoints []string
	// Listen is the TCP address to serve on. Default "127.0.0.1:0".
	Listen string
	// EtcdTimeout bounds each etcd call; a write that does not answer within it
	// is reported as outcome_unknown. Default 2s.
	EtcdTimeout time.Duration
	// TLS, when set, is the etcd client's TLS config (clientv3.Config.TLS):
	// RootCAs holds the CA that signed the members' certificates and, for
	// members that require client certificates (etcd's --client-cert-auth),
	// Certificates this server's. Every endpoint must then be https://.
	// Default nil: no TLS of locksim's own (an https:// endpoint is then
	// verified against the system's CAs).
	TLS *tls.Config
	// DialContext, when set, dials every connection of the etcd client, so a
	// sandbox can cut or delay the lock server <-> etcd links.
	DialContext func(ctx context.Context, addr string) (net.Conn, error)
	// Unsafe is "" (safe, the default) or UnsafeCheckThenSet.
	Unsafe string
	// Recipe is "" (locksim's own lock server, the default) or RecipeMutex:
	// etcd's concurrency.Mutex behind the same API, for comparison.
	Recipe string
	// UnsafeGap is how long the check-then-set acquire waits between its Get
	// and its Put (widens the race window). Default 0. Ignored when safe.
	UnsafeGap time.Duration
	// MaxTTL is the largest accepted ttl. Default 3600s.
	MaxTTL time.Duration
	// MaxTimeout is the largest accepted acquire timeout. Default 300s.
	MaxTimeout time.Duration
	// APIKeys maps bearer keys to client ids. Empty (the default): auth off.
	// When set, every /locks/ request needs "Authorization: Bearer <key>"
	// (401 unauthorized otherwise) and an acquire's clientId, when given, must
	// be the key's (403 forbidden); without one the key's client id is used.
	APIKeys map[string]string
	// RateLimit is the sustained rate of /locks/ requests per second this
	// server accepts; above it: 429 rate_limited with Retry-After. 0: no limit.
	RateLimit float64
	// RateBurst is the rate limiter's burst. Default max(1, RateLimit).
	RateBurst int
	// LeasePool is the most leases the server keeps for reuse after a
	// release (see the package doc: a lock cycle then costs two Raft writes
	// instead of four). Default 1024; negative: no pool, every acquire grants
	// a lease and every release revokes it.
	LeasePool int
	// ReceiptTTL bounds how long a release receipt stays in etcd: receipts
	// are written under a lease of this TTL that the server grants, never
	// keeps alive, and replaces after half of it, so each receipt lives
	// between ReceiptTTL/2 and ReceiptTTL. Default 60s.
	ReceiptTTL time.Duration
	// Now is the clock used for expiresAt and deadlines. Default time.Now.
	Now func() time.Time
	// Logger receives request and lifecycle logs. Default: discard.
	Logger *slog.Logger
}

// Stats are cumulative counters (Waiters is a gauge) of one Server.
type Stats struct {
	Requests           int64 // HTTP requests received
	Rejected           int64 // requests refused by auth (401/403) or the rate limit (429)
	AcquireOK          int64 // acquires granted
	AcquireBusy        int64 // acquires answered 409 lock_busy
	AcquireUnknown     int64 // acquires answered 504 outcome_unknown
	AcquireUnavailable int64 // acquires answered 503 unavailable
	Releases           int64 // successful releases
	ReleaseNotHolder   int64 // releases answered 409 not_holder
	Renews             int64 // successful renews
	RenewNotHolder     int64 // renews answered 409 not_holder
	GrantTxns          int64 // grant attempts (acquire txns) sent to etcd
	LeaseGrants        int64 // leases granted (Raft writes)
	LeaseReuses        int64 // acquires that took a kept lease instead of granting one
	LeaseRestarts      int64 // lease restarts sent on the keep-alive stream
	HandOvers          int64 // releases that handed the lock over to the oldest waiter
	HandedOver         int64 // blocked acquires answered with a lock a release handed over
	PooledLeases       int64 // leases kept for reuse right now
	Waiters            int64 // blocked acquires queued right now
	EtcdErrors         int64 // etcd calls that failed
}

type counters struct {
	requests, rejected, acquireOK, acquireBusy, acquireUnknown, acquireUnavailable atomic.Int64
	releases, releaseNotHolder, renews, renewNotHolder                             atomic.Int64
	grantTxns, waiters, etcdErrors, leaseGrants, leaseReuses                       atomic.Int64
	handOvers, handedOver, leaseRestarts                                           atomic.Int64
}

// Server is one stateless HTTP lock server backed by etcd.
type Server struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler

	ctx    context.Context // cancelled by Close: every request and etcd call derives from it
	cancel context.CancelFunc

	mu        sync.Mutex
	started   bool
	closed    bool
	cli       *clientv3.Client
	etcd      atomic.Pointer[clientv3.Client] // = cli, readable without mu
	ln        net.Listener
	hs        *http.Server
	serveDone chan struct{}
	inflight  sync.WaitGroup // handlers and background cleanups

	pause     pauser
	stats     counters
	metrics   *metrics
	limiter   *rate.Limiter // nil: no rate limit
	pool      *leasePool    // nil: no lease pool
	minTTL    atomic.Int64  // etcd's minimum lease TTL in seconds, once a grant revealed it
	receipts  receiptLease  // the lease release receipts are written under
	claims    claimLeases   // the leases waiter keys are written under
	keeper    *keeper       // restarts leases over one keep-alive stream
	contended contention    // resources that had waiters lately

	// renewHook, when set by tests, runs in renew between its read of the
	// lock and its effect.
	renewHook func()
	// giveUpHook, when set by tests, runs when a waiter's deadline has
	// passed, before it leaves the queue.
	giveUpHook func()
	// dialOptions, when set by tests before Start, are added to the etcd
	// client's dial options.
	dialOptions []grpc.DialOption

	// unsafeHook, when set by tests, runs between the Get and the Put of the
	// check-then-set acquire.
	unsafeHook func()
}

// New validates cfg, fills defaults and returns a Server that is not yet serving.
func New(cfg Config) (*Server, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("lockserver: Config.Endpoints is required")
	}
	if err := checkTLSEndpoints(cfg.Endpoints, cfg.TLS); err != nil {
		return nil, err
	}
	if cfg.Unsafe != "" && cfg.Unsafe != UnsafeCheckThenSet {
		return nil, fmt.Errorf("lockserver: unknown Config.Unsafe mode %q (want %q or empty)", cfg.Unsafe, UnsafeCheckThenSet)
	}
	if cfg.Recipe != "" && cfg.Recipe != RecipeMutex {
		return nil, fmt.Errorf("lockserver: unknown Config.Recipe %q (want %q or empty)", cfg.Recipe, RecipeMutex)
	}
	if cfg.Recipe != "" && cfg.Unsafe != "" {
		return nil, errors.New("lockserver: Config.Unsafe applies to locksim's own recipe only")
	}
	if cfg.Name == "" {
		cfg.Name = "lockserver"
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.EtcdTimeout <= 0 {
		cfg.EtcdTimeout = 2 * time.Second
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = 3600 * time.Second
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 300 * time.Second
	}
	if cfg.ReceiptTTL <= 0 {
		cfg.ReceiptTTL = 60 * time.Second
	}
	if cfg.LeasePool == 0 {
		cfg.LeasePool = 1024
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("server", cfg.Name)}
	if cfg.RateLimit > 0 {
		if cfg.RateBurst <= 0 {
			cfg.RateBurst = max(1, int(cfg.RateLimit))
			s.cfg.RateBurst = cfg.RateBurst
		}
		s.limiter = rate.NewLimiter(rate.Limit(cfg.RateLimit), cfg.RateBurst)
	}
	if cfg.LeasePool > 0 {
		s.pool = newLeasePool(cfg.LeasePool)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.keeper = newKeeper(s)
	s.metrics = newMetrics(s)
	s.handler = s.routes()
	return s, nil
}

// Start creates the etcd client, listens on Config.Listen and serves in the
// background until Close. ctx bounds only the start itself. The etcd client
// connects lazily: Start succeeds while etcd is unreachable (requests then
// answer 503).
func (s *Server) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("lockserver: Start after Close")
	}
	if s.started {
		return errors.New("lockserver: already started")
	}
	ccfg := clientv3.Config{
		Endpoints:            s.cfg.Endpoints,
		DialTimeout:          s.cfg.EtcdTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Logger:               zap.NewNop(),
		TLS:                  s.cfg.TLS,
		Context:              s.ctx,
		DialOptions:          []grpc.DialOption{grpc.WithChainUnaryInterceptor(retryNoLeader)},
	}
	ccfg.DialOptions = append(ccfg.DialOptions, s.dialOptions...)
	if d := s.cfg.DialContext; d != nil {
		ccfg.DialOptions = append(ccfg.DialOptions, grpc.WithContextDialer(d))
	}
	cli, err := clientv3.New(ccfg)
	if err != nil {
		return fmt.Errorf("lockserver: etcd client: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		_ = cli.Close()
		return fmt.Errorf("lockserver: listen %s: %w", s.cfg.Listen, err)
	}
	s.cli, s.ln = cli, ln
	s.etcd.Store(cli)
	s.hs = &http.Server{
		Handler:           s.handler,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.serveDone = make(chan struct{})
	s.started = true
	go s.keeper.run(s.ctx)
	go func() {
		defer close(s.serveDone)
		_ = s.hs.Serve(ln)
	}()
	s.log.Info("lock server started", "addr", ln.Addr().String(), "unsafe", s.cfg.Unsafe)
	return nil
}

// Close stops the server abruptly, like a crash: it closes the listener and
// every live connection, cancels in-flight work (no cleanup is sent to etcd),
// waits for handlers to return and closes the etcd client. It works while
// paused, is idempotent and returns only when the server's goroutines are gone.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started := s.started
	s.mu.Unlock()

	s.cancel()
	var err error
	if s.hs != nil {
		err = s.hs.Close()
		<-s.serveDone
	}
	s.inflight.Wait()
	if started {
		<-s.keeper.done
	}
	if s.cli != nil {
		if cerr := s.cli.Close(); cerr != nil && !errors.Is(cerr, context.Canceled) && err == nil {
			err = cerr
		}
	}
	s.log.Info("lock server closed")
	return err
}

// Addr is the listening address (host:port); empty before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL is "http://" + Addr().
func (s *Server) URL() string { return "http://" + s.Addr() }

// Name is Config.Name.
func (s *Server) Name() string { return s.cfg.Name }

// Handler serves the HTTP API. It needs Start (for the etcd client) to answer
// anything but 503, and is usable with httptest.
func (s *Server) Handler() http.Handler { return s.handler }

// Pause freezes the server like SIGSTOP or a long GC pause: requests already
// in flight and new ones stop at their next checkpoint (before each etcd call
// and before writing a response) until Resume.
func (s *Server) Pause() { s.pause.pause() }

// Resume undoes Pause.
func (s *Server) Resume() { s.pause.resume() }

// Paused reports whether the server is paused.
func (s *Server) Paused() bool { return s.pause.paused() }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Requests:           c.requests.Load(),
		Rejected:           c.rejected.Load(),
		AcquireOK:          c.acquireOK.Load(),
		AcquireBusy:        c.acquireBusy.Load(),
		AcquireUnknown:     c.acquireUnknown.Load(),
		AcquireUnavailable: c.acquireUnavailable.Load(),
		Releases:           c.releases.Load(),
		ReleaseNotHolder:   c.releaseNotHolder.Load(),
		Renews:             c.renews.Load(),
		RenewNotHolder:     c.renewNotHolder.Load(),
		GrantTxns:          c.grantTxns.Load(),
		LeaseGrants:        c.leaseGrants.Load(),
		LeaseReuses:        c.leaseReuses.Load(),
		LeaseRestarts:      c.leaseRestarts.Load(),
		HandOvers:          c.handOvers.Load(),
		HandedOver:         c.handedOver.Load(),
		PooledLeases:       int64(s.pool.len()),
		Waiters:            c.waiters.Load(),
		EtcdErrors:         c.etcdErrors.Load(),
	}
}

// track registers one unit of in-flight work; false once the server is closed.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.inflight.Add(1)
	return true
}

// kv returns the etcd client, or nil before Start.
func (s *Server) kv() *clientv3.Client { return s.etcd.Load() }

// async runs f in the background with a cleanupCtx. Used for cleanups that
// are not needed for correctness (lease revokes).
func (s *Server) async(f func(ctx context.Context)) {
	if !s.track() {
		return
	}
	go func() {
		defer s.inflight.Done()
		ctx, cancel := s.cleanupCtx()
		defer cancel()
		f(ctx)
	}()
}

// checkpoint blocks while the server is paused; it fails when ctx ends.
func (s *Server) checkpoint(ctx context.Context) error {
	return s.pause.wait(ctx)
}

// pauser is a gate that is open unless paused.
type pauser struct {
	mu   sync.Mutex
	on   bool
	gate chan struct{}
}

func (p *pauser) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.on {
		p.on = true
		p.resumeCh()
	}
}

func (p *pauser) resumeCh() chan struct{} {
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
	return p.gate
}

func (p *pauser) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.on {
		p.on = false
		close(p.gate)
		p.gate = nil
	}
}

func (p *pauser) paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.on
}

func (p *pauser) wait(ctx context.Context) error {
	p.mu.Lock()
	if !p.on {
		p.mu.Unlock()
		return ctx.Err()
	}
	ch := p.resumeCh()
	p.mu.Unlock()
	select {
	case <-ch:
		return ctx.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}
