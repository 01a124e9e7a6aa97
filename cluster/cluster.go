package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

type state int

const (
	stateNew state = iota
	stateStarted
	stateClosed
)

// pkiDir is the directory, inside the data root, of the peer certificates.
const pkiDir = "peer-tls"

// startAttempts bounds how often Start retries with fresh ports after a port
// clash ("address already in use").
const startAttempts = 4

// Cluster is a set of embedded etcd members in this process. See the package doc.
type Cluster struct {
	cfg   Config
	names []string

	// lifeMu serialises Start and Close.
	lifeMu sync.Mutex
	// opMu[i] serialises Crash/Restart of member i (and Close).
	opMu []sync.Mutex
	// closeCtx is cancelled when Close begins; it aborts waits in Start/Restart.
	closeCtx  context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error

	// mu guards state, members[i].etcd/id/ports/dir and proxies.
	mu      sync.RWMutex
	state   state
	members []*member
	// nw holds the cuts and delays of every directed link; proxies[i] fronts
	// member i's peer listener and relays through nw (nil before Start and
	// after Close). pki holds the members' peer certificates (from Start on).
	nw      *network
	proxies []*peerProxy
	pki     *peerPKI
	// clientPKI holds the client TLS files (from Start on; nil without
	// Config.ClientTLS).
	clientPKI *clientPKI
	// direct (benchmarks only, set before Start): no proxies, no TLS; the
	// members dial each other's listeners and no link fault has any effect.
	direct bool

	// stoppers tracks the background halves of Crash.
	stoppers sync.WaitGroup

	dir       string // root data dir
	ownDir    bool   // dir was created by Start and is removed by Close
	logger    *zap.Logger
	closeLogs func()
}

// New validates cfg, fills its defaults and allocates the members' ports.
// It starts nothing.
func New(cfg Config) (*Cluster, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	closeCtx, cancel := context.WithCancelCause(context.Background())
	c := &Cluster{
		closeCtx:  closeCtx,
		cancel:    func() { cancel(ErrClosed) },
		cfg:       cfg,
		opMu:      make([]sync.Mutex, cfg.Members),
		nw:        newNetwork(cfg.Members, uint64(cfg.Seed)),
		logger:    zap.NewNop(),
		closeLogs: func() {},
	}
	for i := range cfg.Members {
		c.names = append(c.names, memberName(i))
		c.members = append(c.members, &member{name: memberName(i), clientTLS: cfg.ClientTLS})
	}
	if err := c.allocatePorts(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) allocatePorts() error {
	const per = 3 // advertised peer port (the proxy's), client, real peer listener
	ports, err := freePorts(c.cfg.Host, per*len(c.members))
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.members {
		p := ports[per*i:]
		m.peerPort, m.clientPort, m.listenPort = p[0], p[1], p[2]
		if c.direct {
			m.listenPort = m.peerPort
		}
	}
	return nil
}

// Start boots the members one after another (in parallel each would wait about
// a second for peers that listen but do not serve yet), then waits until every
// member is ready and a leader is agreed. If a port turned out to be taken it
// starts over with fresh ports and empty data dirs. On error every started
// member is stopped again; Close is still needed to remove the data dirs.
func (c *Cluster) Start(ctx context.Context) error {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	c.mu.RLock()
	st := c.state
	c.mu.RUnlock()
	switch st {
	case stateStarted:
		return ErrStarted
	case stateClosed:
		return ErrClosed
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()

	if err := c.prepareDirs(); err != nil {
		return err
	}
	var err error
	for attempt := range startAttempts {
		if attempt > 0 {
			if err := c.allocatePorts(); err != nil {
				return err
			}
		}
		if err = c.startProxies(); err == nil {
			err = c.bootstrap(ctx)
		}
		if err == nil {
			c.mu.Lock()
			c.state = stateStarted
			c.mu.Unlock()
			return nil
		}
		c.stopAll()
		c.closeProxies()
		for _, m := range c.members {
			if rmErr := os.RemoveAll(m.dir); rmErr != nil {
				return errors.Join(err, rmErr)
			}
		}
		if !isAddrInUse(err) {
			break
		}
	}
	return err
}

// bound derives a ctx that ends at ReadyTimeout or when Close begins.
func (c *Cluster) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.cfg.ReadyTimeout, fmt.Errorf("cluster: ReadyTimeout %v elapsed", c.cfg.ReadyTimeout))
	stop := context.AfterFunc(c.closeCtx, cancel)
	return ctx, func() { stop(); cancel() }
}

func (c *Cluster) prepareDirs() error {
	c.dir = c.cfg.Dir
	if c.dir == "" {
		d, err := os.MkdirTemp("", "locksim-etcd-")
		if err != nil {
			return fmt.Errorf("cluster: data dir: %w", err)
		}
		c.dir, c.ownDir = d, true
	}
	if c.cfg.LogFile != "" {
		ws, closeFn, err := zap.Open(c.cfg.LogFile)
		if err != nil {
			return fmt.Errorf("cluster: log file: %w", err)
		}
		enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
		c.logger = zap.New(zapcore.NewCore(enc, ws, zapcore.InfoLevel))
		c.closeLogs = func() { _ = c.logger.Sync(); closeFn() }
	}
	pki, err := newPeerPKI(filepath.Join(c.dir, pkiDir), c.cfg.Host, c.names)
	if err != nil {
		return err
	}
	var cpki *clientPKI
	if c.cfg.ClientTLS {
		if cpki, err = newClientPKI(filepath.Join(c.dir, clientTLSDir), c.cfg.Host, c.cfg.ClientCertAuth); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pki, c.clientPKI = pki, cpki
	for _, m := range c.members {
		m.dir = filepath.Join(c.dir, m.name)
	}
	return nil
}

// bootstrap starts every member as part of a new cluster and waits for
// readiness and a leader.
func (c *Cluster) bootstrap(ctx context.Context) error {
	for _, m := range c.members {
		e, g, err := c.startEtcd(m, embed.ClusterStateFlagNew)
		if err != nil {
			return err
		}
		c.mu.Lock()
		m.etcd, m.gate = e, g
		c.mu.Unlock()
	}
	// Every member knows all IDs from the initial cluster.
	ids := map[string]uint64{}
	for _, mm := range c.members[0].etcd.Server.Cluster().Members() {
		ids[mm.Name] = uint64(mm.ID)
	}
	c.mu.Lock()
	for _, m := range c.members {
		m.id = ids[m.name]
	}
	c.mu.Unlock()
	for _, m := range c.members {
		select {
		case <-m.etcd.Server.ReadyNotify():
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s not ready: %w", m.name, context.Cause(ctx))
		}
	}
	_, err := c.WaitLeader(ctx)
	return err
}

// stopAll hard-stops every running member in parallel.
func (c *Cluster) stopAll() {
	c.mu.Lock()
	type running struct {
		e *embed.Etcd
		g *gate
	}
	var rs []running
	for _, m := range c.members {
		if m.etcd != nil {
			rs = append(rs, running{m.etcd, m.gate})
			m.etcd, m.gate = nil, nil
		}
	}
	proxies := c.proxies
	c.mu.Unlock()
	for _, p := range proxies {
		p.setDown(true)
	}
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() { stopEtcd(r.e, r.g) })
	}
	wg.Wait()
}

// Close hard-stops every running member (in parallel, about 1 s), closes the
// peer proxies (breaking every connection through them), removes the data
// dirs and certificates this package created and closes the log file. It is
// idempotent and safe to call concurrently with anything. etcd's peer
// keep-alive goroutines may outlive it by up to ~12 s (they end on their
// own).
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.lifeMu.Lock()
		defer c.lifeMu.Unlock()
		for i := range c.opMu {
			c.opMu[i].Lock()
			defer c.opMu[i].Unlock()
		}
		c.mu.Lock()
		c.state = stateClosed
		c.mu.Unlock()
		var proxies sync.WaitGroup
		proxies.Go(c.closeProxies)
		c.stopAll()
		c.stoppers.Wait()
		proxies.Wait()
		var errs []error
		if c.ownDir {
			errs = append(errs, os.RemoveAll(c.dir))
		} else {
			for _, m := range c.members {
				if m.dir != "" {
					errs = append(errs, os.RemoveAll(m.dir))
				}
			}
			if c.pki != nil {
				errs = append(errs, os.RemoveAll(c.pki.dir))
			}
			if c.clientPKI != nil {
				errs = append(errs, os.RemoveAll(c.clientPKI.dir))
			}
		}
		c.closeLogs()
		if err := errors.Join(errs...); err != nil {
			c.closeErr = fmt.Errorf("cluster: close: %w", err)
		}
	})
	return c.closeErr
}

// Names returns the member names, "etcd-1".."etcd-N".
func (c *Cluster) Names() []string { return slices.Clone(c.names) }

// ClientURLs returns every member's client URL in name order. They are fixed
// from the moment Start returns and survive Crash/Restart (ports are fixed),
// so clientv3 can keep its endpoints. (Start may pick fresh ports if one
// allocated by New was taken meanwhile.)
func (c *Cluster) ClientURLs() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.clientURL(c.cfg.Host)
	}
	return out
}

// ClientURL returns one member's client URL.
func (c *Cluster) ClientURL(name string) (string, error) {
	i, err := c.index(name)
	if err != nil {
		return "", err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.members[i].clientURL(c.cfg.Host), nil
}

// DataDir returns the data dir of a member (valid after Start).
func (c *Cluster) DataDir(name string) (string, error) {
	i, err := c.index(name)
	if err != nil {
		return "", err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.members[i].dir, nil
}

func (c *Cluster) index(name string) (int, error) {
	i := slices.Index(c.names, name)
	if i < 0 {
		return 0, fmt.Errorf("%w: %q", ErrUnknownMember, name)
	}
	return i, nil
}

// Crash stops a member abruptly, keeping its data dir for Restart: no
// leadership transfer. Raft stops within a few ms; Crash returns after embed's
// Close (about 1 s, waiting for peer connections), when all its ports are
// free. Callers that must not block run it in a goroutine. Its cuts are
// remembered.
func (c *Cluster) Crash(name string) error {
	i, err := c.index(name)
	if err != nil {
		return err
	}
	c.opMu[i].Lock()
	defer c.opMu[i].Unlock()
	c.mu.Lock()
	if err := c.usableLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	m := c.members[i]
	e, g := m.etcd, m.gate
	if e == nil {
		c.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrMemberDown, name)
	}
	m.etcd, m.gate = nil, nil
	stopped := make(chan struct{})
	m.stopped = stopped
	c.mu.Unlock()
	// HardStop halts Raft, the applier and the peer transport at once, and
	// closes the store: the gate refuses client requests first (see gate),
	// and the member's peer proxy the other members' requests.
	c.proxyDown(i, true)
	g.close()
	e.Server.HardStop()
	c.stoppers.Go(func() {
		defer close(stopped)
		e.Close()
	})
	// Wait for embed's Close too (about 1 s: it waits for peer stream
	// connections). Returning earlier lets requests on already open client
	// connections reach a server whose Raft is stopped ("raft: stopped")
	// instead of failing over, which a real crash never does.
	<-stopped
	return nil
}

// Restart boots a crashed member again with the same name, data dir and
// URLs (its cuts and delays hold from its first byte: they live in the peer
// proxies), and waits until it is ready
// (it has published itself through Raft, which needs a quorum). If ctx ends
// first the member keeps running and the error wraps ctx's; it becomes ready
// once a quorum forms. Restart refuses (ErrNoData) a member without a WAL.
func (c *Cluster) Restart(ctx context.Context, name string) error {
	i, err := c.index(name)
	if err != nil {
		return err
	}
	c.opMu[i].Lock()
	defer c.opMu[i].Unlock()
	c.mu.RLock()
	m := c.members[i]
	err = c.usableLocked()
	up := m.etcd != nil
	stopped := m.stopped
	c.mu.RUnlock()
	switch {
	case err != nil:
		return err
	case up:
		return fmt.Errorf("%w: %s", ErrMemberUp, name)
	case !m.hasData():
		return fmt.Errorf("%w: %s (%s)", ErrNoData, name, m.dir)
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if stopped != nil {
		select {
		case <-stopped:
		case <-ctx.Done():
			return fmt.Errorf("cluster: restart %s: previous stop not finished: %w", name, context.Cause(ctx))
		}
	}

	start := time.Now()
	var e *embed.Etcd
	var g *gate
	c.proxyDown(i, false)
	for {
		// The fixed ports may be briefly held by someone else (for example an
		// outgoing connection that got the same ephemeral port): retry.
		e, g, err = c.startEtcd(m, embed.ClusterStateFlagExisting)
		if err == nil {
			break
		}
		if !isAddrInUse(err) {
			return err
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (retried for %v): %w", err, time.Since(start).Round(time.Millisecond), context.Cause(ctx))
		case <-t.C:
		}
	}
	c.mu.Lock()
	m.etcd, m.gate = e, g
	c.mu.Unlock()
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: restart %s: running but not ready: %w", name, context.Cause(ctx))
	}
}

// usableLocked checks that Start succeeded and Close has not run.
func (c *Cluster) usableLocked() error {
	switch c.state {
	case stateNew:
		return ErrNotStarted
	case stateClosed:
		return ErrClosed
	}
	return nil
}
