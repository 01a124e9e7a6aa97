package sim

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/loadbalancer"
	"github.com/locksim/locksim/lockserver"
)

// Errors returned by the sandbox.
var (
	ErrClosed      = errors.New("sim: sandbox closed")
	ErrUnknownNode = errors.New("sim: unknown component")
	ErrNotRunning  = errors.New("sim: component is not running")
	ErrRunning     = errors.New("sim: component is already running")
	ErrExternal    = errors.New("sim: etcd is external; member faults are unavailable")
)

// Sandbox is one whole locking service in this process: etcd members, lock
// servers, a balancer, the protected resource and simulated clients, wired
// through an in-process network emulator so that links can be cut.
type Sandbox struct {
	cfg   Config
	start time.Time

	cluster  *cluster.Cluster // nil with ExternalEtcd
	etcdURLs []string
	net      *faults.Network
	resource *Resource
	rec      *history.Recorder
	observer *observer

	mu        sync.Mutex
	closed    bool
	servers   []*serverSlot
	balancer  *loadbalancer.Balancer
	lbAddr    string
	clients   []*client
	events    []faults.Event
	changed   chan struct{} // closed and replaced on every client phase change
	workload  context.CancelFunc
	workerWG  sync.WaitGroup
	eventSubs []func(faults.Event)
	keys      map[string]string // API key -> client id (nil: auth off)
	draining  atomic.Bool
	triggers  triggers
}

type serverSlot struct {
	name   string
	addr   string // fixed after the first start, reused on restart
	server *lockserver.Server
	paused bool
}

// New validates cfg and returns a sandbox that is not started yet.
func New(cfg Config) (*Sandbox, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	sb := &Sandbox{
		cfg:      cfg,
		resource: NewResource(!cfg.Unfenced),
		changed:  make(chan struct{}),
	}
	sb.net = faults.NewNetwork(rand.New(rand.NewPCG(uint64(cfg.Seed), 7)))
	if cfg.Auth || len(cfg.APIKeys) > 0 {
		sb.keys = map[string]string{}
		for k, v := range cfg.APIKeys {
			sb.keys[k] = v
		}
		for i := range cfg.Clients {
			sb.keys[randomKey()] = fmt.Sprintf("client-%d", i+1)
		}
	}
	return sb, nil
}

// Config returns the sandbox's configuration with defaults filled in.
func (sb *Sandbox) Config() Config { return sb.cfg }

// Start boots every component in order: etcd members, lock servers, the
// balancer, the etcd observer. It does not start the clients (see
// StartWorkload). On error everything started so far is closed.
func (sb *Sandbox) Start(ctx context.Context) (err error) {
	sb.start = time.Now()
	sb.rec = history.NewRecorder(sb.start)
	defer func() {
		if err != nil {
			_ = sb.Close()
		}
	}()
	if len(sb.cfg.ExternalEtcd) == 0 {
		c, err := cluster.New(cluster.Config{
			Members:       sb.cfg.Members,
			Dir:           sb.cfg.DataDir,
			TickMs:        sb.cfg.TickMs,
			ElectionMs:    sb.cfg.ElectionMs,
			LogFile:       sb.cfg.EtcdLog,
			UnsafeNoFsync: !sb.cfg.Fsync,
			Seed:          sb.cfg.Seed,
		})
		if err != nil {
			return err
		}
		sb.cluster = c
		if err := c.Start(ctx); err != nil {
			return err
		}
		sb.etcdURLs = c.ClientURLs()
		for i, name := range c.Names() {
			sb.net.Name(hostPort(sb.etcdURLs[i]), name)
		}
	} else {
		sb.etcdURLs = append([]string(nil), sb.cfg.ExternalEtcd...)
		for i, u := range sb.etcdURLs {
			sb.net.Name(hostPort(u), fmt.Sprintf("etcd-%d", i+1))
		}
	}

	for i := range sb.cfg.LockServers {
		slot := &serverSlot{name: fmt.Sprintf("lockserver-%d", i+1), addr: "127.0.0.1:0"}
		if err := sb.startServer(ctx, slot); err != nil {
			return err
		}
		sb.servers = append(sb.servers, slot)
	}
	if err := sb.startBalancer(ctx); err != nil {
		return err
	}
	obs, err := newObserver(ctx, sb.etcdURLs, sb.now)
	if err != nil {
		return err
	}
	sb.observer = obs
	return nil
}

func (sb *Sandbox) now() time.Duration { return time.Since(sb.start) }

func (sb *Sandbox) startServer(ctx context.Context, slot *serverSlot) error {
	dial := sb.net.Dialer(slot.name)
	s, err := lockserver.New(lockserver.Config{
		Name:        slot.name,
		Endpoints:   sb.etcdURLs,
		Listen:      slot.addr,
		EtcdTimeout: sb.cfg.EtcdTimeout,
		Unsafe:      sb.cfg.Unsafe,
		APIKeys:     sb.keys,
		RateLimit:   sb.cfg.RateLimit,
		DialContext: func(ctx context.Context, addr string) (net.Conn, error) {
			return dial(ctx, "tcp", addr)
		},
	})
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return fmt.Errorf("%s: %w", slot.name, err)
	}
	slot.server = s
	slot.addr = s.Addr()
	sb.net.Name(slot.addr, slot.name)
	return nil
}

func (sb *Sandbox) startBalancer(ctx context.Context) error {
	backends := make([]string, len(sb.servers))
	for i, s := range sb.servers {
		backends[i] = "http://" + s.addr
	}
	listen := sb.lbAddr
	if listen == "" {
		listen = sb.cfg.BalancerListen
	}
	dial := sb.net.Dialer("balancer")
	tr := &http.Transport{
		DialContext:         dial,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
	}
	lb, err := loadbalancer.New(loadbalancer.Config{
		Listen:         listen,
		Backends:       backends,
		Policy:         sb.cfg.Policy,
		HealthInterval: sb.cfg.HealthInterval,
		Transport:      tr,
	})
	if err != nil {
		return err
	}
	if err := lb.Start(ctx); err != nil {
		return fmt.Errorf("balancer: %w", err)
	}
	sb.balancer = lb
	sb.lbAddr = lb.Addr()
	sb.net.Name(sb.lbAddr, "balancer")
	return nil
}

// Close stops the clients and every component, in reverse order of start.
// It is idempotent.
func (sb *Sandbox) Close() error {
	sb.mu.Lock()
	if sb.closed {
		sb.mu.Unlock()
		return nil
	}
	sb.closed = true
	sb.mu.Unlock()
	sb.StopWorkload()

	var errs []error
	sb.mu.Lock()
	lb := sb.balancer
	servers := append([]*serverSlot(nil), sb.servers...)
	sb.mu.Unlock()
	if sb.observer != nil {
		sb.observer.Close()
	}
	if lb != nil {
		errs = append(errs, lb.Close())
	}
	for _, s := range servers {
		if s.server != nil {
			s.server.Resume()
			errs = append(errs, s.server.Close())
		}
	}
	if sb.cluster != nil {
		errs = append(errs, sb.cluster.Close())
	}
	return errors.Join(errs...)
}

// Addresses lists where every component listens.
type Addresses struct {
	Balancer    string            `json:"balancer"`
	LockServers map[string]string `json:"lockServers"`
	Etcd        map[string]string `json:"etcd"`
}

// Addresses returns the URL of the balancer, each lock server and each etcd member.
func (sb *Sandbox) Addresses() Addresses {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	a := Addresses{Balancer: "http://" + sb.lbAddr, LockServers: map[string]string{}, Etcd: map[string]string{}}
	for _, s := range sb.servers {
		a.LockServers[s.name] = "http://" + s.addr
	}
	for i, u := range sb.etcdURLs {
		a.Etcd[fmt.Sprintf("etcd-%d", i+1)] = u
	}
	return a
}

// BalancerURL is the single entry point of the lock service.
func (sb *Sandbox) BalancerURL() string {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return "http://" + sb.lbAddr
}

// EtcdURLs are the etcd client URLs the lock servers use.
func (sb *Sandbox) EtcdURLs() []string { return append([]string(nil), sb.etcdURLs...) }

// Cluster returns the embedded etcd cluster (nil with ExternalEtcd).
func (sb *Sandbox) Cluster() *cluster.Cluster { return sb.cluster }

// Resource returns the protected resource.
func (sb *Sandbox) Resource() *Resource { return sb.resource }

// Recorder returns the history recorder of this sandbox.
func (sb *Sandbox) Recorder() *history.Recorder { return sb.rec }

// Balancer returns the running balancer (nil while crashed).
func (sb *Sandbox) Balancer() *loadbalancer.Balancer {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.balancer
}

// LockServer returns the running lock server of that name (nil while crashed).
func (sb *Sandbox) LockServer(name string) *lockserver.Server {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	for _, s := range sb.servers {
		if s.name == name {
			return s.server
		}
	}
	return nil
}

func hostPort(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Host
}

// publishEvent records a fault event and hands it to subscribers.
func (sb *Sandbox) publishEvent(ev faults.Event) {
	sb.mu.Lock()
	replaced := false
	for i := range sb.events {
		if sb.events[i].ID == ev.ID {
			sb.events[i] = ev
			replaced = true
		}
	}
	if !replaced {
		sb.events = append(sb.events, ev)
	}
	subs := append([]func(faults.Event){}, sb.eventSubs...)
	sb.mu.Unlock()
	for _, f := range subs {
		f(ev)
	}
}

// Events returns every fault event so far (latest state of each).
func (sb *Sandbox) Events() []faults.Event {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return append([]faults.Event(nil), sb.events...)
}

func randomKey() string {
	b := make([]byte, 16)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}

// keyOf returns the API key of a client ("" with auth off).
func (sb *Sandbox) keyOf(client string) string {
	for k, v := range sb.keys {
		if v == client {
			return k
		}
	}
	return ""
}
