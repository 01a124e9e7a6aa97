package sim

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/loadbalancer"
	"github.com/locksim/locksim/lockserver"
	"github.com/locksim/locksim/sim/clients"
	"github.com/locksim/locksim/sim/resource"
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
// servers, a balancer (or a VRRP group of them behind a virtual address), the
// protected resource and simulated clients, wired through an in-process
// network emulator so that links can be cut.
type Sandbox struct {
	cfg   Config
	start time.Time

	cluster  *cluster.Cluster // nil with ExternalEtcd
	etcdURLs []string
	net      *faults.Network
	resource *resource.Store
	rec      *history.Recorder
	observer *lockserver.Observer
	faults   *faults.Injector
	stream   *os.File // the recorder's Sink with StreamHistory
	spill    *os.File // the Observer's spill with StreamHistory

	mu       sync.Mutex
	closed   bool
	servers  []*serverSlot
	lbs      []*balancerSlot              // the balancers, balancer-1..N (one: "balancer")
	vip      *loadbalancer.VirtualAddress // with two or more balancers
	entry    string                       // host:port clients use: the only balancer's, or the virtual address
	lbLog    balancerLog
	clients  []*simClient
	workload context.CancelFunc
	workerWG sync.WaitGroup
	keys     map[string]string // API key -> client id (nil: auth off)
	draining atomic.Bool
	triggers triggers

	logDir     string // LockServerCmd's logs
	tempLogs   bool   // logDir is removed on Close
	life       context.Context
	endLife    context.CancelFunc // cancels restarts under way at Close
	restarting sync.WaitGroup
	held       *heldPoller // who holds what, as a custom lock server answers (nil for locksim's own)
}

// serverSlot is one lock server, across its crashes and restarts.
type serverSlot struct {
	name     string
	addr     string  // fixed after the first start, reused on restart
	run      running // nil while crashed
	starting bool    // a restart is under way
	paused   bool
	proxies  []*faults.Proxy // LockServerCmd: its way to each etcd member, kept across restarts
}

// simClient is a simulated client and the HTTP transport it owns.
type simClient struct {
	*clients.Client
	tr *http.Transport
}

// New validates cfg and returns a sandbox that is not started yet.
func New(cfg Config) (*Sandbox, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	sb := &Sandbox{
		cfg:      cfg,
		resource: resource.New(!cfg.Unfenced),
	}
	sb.life, sb.endLife = context.WithCancel(context.Background())
	sb.net = faults.NewNetwork(rand.New(rand.NewPCG(uint64(cfg.Seed), 7)))
	if cfg.Auth || len(cfg.APIKeys) > 0 {
		sb.keys = map[string]string{}
		for k, v := range cfg.APIKeys {
			sb.keys[k] = v
		}
		for i := range cfg.Clients {
			sb.keys[randomKey()] = component.Name(component.Client, i+1)
		}
	}
	return sb, nil
}

// Config returns the sandbox's configuration with defaults filled in.
func (sb *Sandbox) Config() Config { return sb.cfg }

// Start boots every component in order: etcd members, lock servers, the
// balancers (and their virtual address: it returns once the first VRRP
// election gave it an owner), the etcd observer. It does not start the
// clients (see StartWorkload). On error everything started so far is
// closed.
func (sb *Sandbox) Start(ctx context.Context) (err error) {
	sb.start = time.Now()
	sb.rec = history.NewRecorder(sb.start)
	sb.rec.Keep = sb.cfg.HistoryKeep
	sb.faults = &faults.Injector{Env: sb, Start: sb.start}
	defer func() {
		if err != nil {
			_ = sb.Close()
		}
	}()
	if sb.cfg.StreamHistory {
		f, err := os.CreateTemp("", "locksim-history-*.jsonl")
		if err != nil {
			return fmt.Errorf("sim: history stream: %w", err)
		}
		sb.stream = f
		sb.rec.Sink = f
	}
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
			sb.net.Name(hostPort(u), component.Name(component.Etcd, i+1))
		}
	}

	if err := sb.startLockServers(ctx); err != nil {
		return err
	}
	if err := sb.startBalancers(ctx); err != nil {
		return err
	}
	obs, err := lockserver.NewObserver(ctx, sb.etcdURLs, nil, sb.Elapsed)
	if err != nil {
		return err
	}
	obs.Retain(sb.cfg.EtcdRecordRetain)
	sb.observer = obs
	if sb.cfg.StreamHistory {
		f, err := os.CreateTemp("", "locksim-etcd-record-*.jsonl")
		if err != nil {
			return fmt.Errorf("sim: etcd record spill: %w", err)
		}
		sb.spill = f
		obs.SpillTo(f)
	}
	if sb.cfg.Custom() {
		sb.held = startHeldPoller(sb)
	}
	return nil
}

// startLockServers starts every lock server; one that is not locksim's own
// must answer GET /health with 200 and the documented JSON before the
// sandbox goes on.
func (sb *Sandbox) startLockServers(ctx context.Context) error {
	if sb.cfg.LockServerCmd != "" {
		sb.logDir = sb.cfg.LogDir
		if sb.logDir == "" {
			dir, err := os.MkdirTemp("", "locksim-lockservers-*")
			if err != nil {
				return fmt.Errorf("sim: lock server logs: %w", err)
			}
			sb.logDir, sb.tempLogs = dir, true
		}
	}
	for i := range sb.cfg.LockServers {
		slot := &serverSlot{name: component.Name(component.LockServer, i+1), addr: "127.0.0.1:0"}
		sb.mu.Lock()
		sb.servers = append(sb.servers, slot)
		sb.mu.Unlock()
		if sb.cfg.LockServerCmd != "" {
			if err := sb.etcdProxies(slot); err != nil {
				return err
			}
		}
		r, addr, err := sb.startServer(ctx, slot, slot.addr)
		if err != nil {
			return err
		}
		sb.mu.Lock()
		slot.run, slot.addr = r, addr
		sb.mu.Unlock()
		sb.net.Name(addr, slot.name)
	}
	if !sb.cfg.Custom() {
		return nil
	}
	for _, slot := range sb.servers {
		if err := sb.ready(ctx, slot, slot.run); err != nil {
			return err
		}
	}
	return nil
}

// Started is when Start began: time zero of the history, of the fault
// events and of a scenario's steps.
func (sb *Sandbox) Started() time.Time { return sb.start }

// Elapsed is the time since Started.
func (sb *Sandbox) Elapsed() time.Duration { return time.Since(sb.start) }

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
	sb.endLife()
	sb.restarting.Wait()
	sb.StopWorkload()
	if sb.held != nil {
		sb.held.close()
	}

	var errs []error
	sb.mu.Lock()
	servers := append([]*serverSlot(nil), sb.servers...)
	sb.mu.Unlock()
	if sb.observer != nil {
		sb.observer.Close()
	}
	errs = append(errs, sb.closeBalancers()...)
	for _, s := range servers {
		sb.mu.Lock()
		r := s.run
		s.run = nil
		sb.mu.Unlock()
		if r != nil {
			r.Resume()
			errs = append(errs, r.Close())
		}
		for _, p := range s.proxies {
			errs = append(errs, p.Close())
		}
	}
	if sb.tempLogs {
		errs = append(errs, os.RemoveAll(sb.logDir))
	}
	if sb.cluster != nil {
		errs = append(errs, sb.cluster.Close())
	}
	for _, f := range []*os.File{sb.stream, sb.spill} {
		if f != nil {
			errs = append(errs, f.Close(), os.Remove(f.Name()))
		}
	}
	return errors.Join(errs...)
}

// History returns every operation recorded so far, in call order; an
// operation still pending is unknown. With StreamHistory it ends the history
// first (later operations are not streamed) and reads it back from its
// file; otherwise it is what the recorder keeps. Call it when the workload
// has stopped.
func (sb *Sandbox) History() ([]history.Op, error) {
	if sb.stream == nil {
		return sb.rec.Ops(), nil
	}
	if err := sb.rec.Flush(); err != nil {
		return nil, err
	}
	if _, err := sb.stream.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("sim: history stream: %w", err)
	}
	ops, err := history.ReadJSONL(sb.stream)
	if err != nil {
		return nil, fmt.Errorf("sim: history stream: %w", err)
	}
	history.SortByCall(ops)
	return ops, nil
}

// Addresses lists where every component listens.
type Addresses struct {
	// Balancer is the entry point: the only balancer, or the virtual
	// address of two or more.
	Balancer string `json:"balancer"`
	// Balancers are the balancers of a group, by name (empty with one).
	Balancers   map[string]string `json:"balancers,omitempty"`
	LockServers map[string]string `json:"lockServers"`
	Etcd        map[string]string `json:"etcd"`
}

// LockServerNames lists the lock servers' names, sorted.
func (a Addresses) LockServerNames() []string { return slices.Sorted(maps.Keys(a.LockServers)) }

// Addresses returns the URL of the entry point, each balancer of a group,
// each lock server and each etcd member.
func (sb *Sandbox) Addresses() Addresses {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	a := Addresses{Balancer: "http://" + sb.entry, LockServers: map[string]string{}, Etcd: map[string]string{}}
	if sb.vip != nil {
		a.Balancers = map[string]string{}
		for _, b := range sb.lbs {
			a.Balancers[b.name] = "http://" + b.addr
		}
	}
	for _, s := range sb.servers {
		a.LockServers[s.name] = "http://" + s.addr
	}
	for i, u := range sb.etcdURLs {
		a.Etcd[component.Name(component.Etcd, i+1)] = u
	}
	return a
}

// BalancerURL is the single entry point of the lock service: the only
// balancer, or the virtual address of two or more. (A client outside the
// sandbox uses it as is; a simulated client resolves the virtual address
// to its owner when it connects.)
func (sb *Sandbox) BalancerURL() string {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return "http://" + sb.entry
}

// EtcdURLs are the etcd client URLs the lock servers use.
func (sb *Sandbox) EtcdURLs() []string { return append([]string(nil), sb.etcdURLs...) }

// Cluster returns the embedded etcd cluster (nil with ExternalEtcd).
func (sb *Sandbox) Cluster() *cluster.Cluster { return sb.cluster }

// Resource returns the protected resource.
func (sb *Sandbox) Resource() *resource.Store { return sb.resource }

// Recorder returns the history recorder of this sandbox.
func (sb *Sandbox) Recorder() *history.Recorder { return sb.rec }

// Observer returns the watcher of the lock keys in etcd: who holds what now,
// and every grant and release etcd recorded.
func (sb *Sandbox) Observer() *lockserver.Observer { return sb.observer }

// Faults returns the sandbox's fault injector: every fault — a scenario's
// step, a nemesis draw, a click in the page — goes through it, and its
// events are the sandbox's one log of faults.
func (sb *Sandbox) Faults() *faults.Injector { return sb.faults }

// Events returns every fault event so far (latest state of each).
func (sb *Sandbox) Events() []faults.Event {
	if sb.faults == nil {
		return nil
	}
	return sb.faults.Events()
}

// Balancer returns the running balancer of that name ("balancer" for the
// only one, balancer-N in a group); nil while crashed or unknown.
func (sb *Sandbox) Balancer(name string) *loadbalancer.Balancer {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if s := sb.balancerSlot(name); s != nil {
		return s.lb
	}
	return nil
}

// VirtualAddress returns the virtual address of a group of balancers (nil
// with one balancer).
func (sb *Sandbox) VirtualAddress() *loadbalancer.VirtualAddress { return sb.vip }

// LockServer returns the running lock server of that name when it is
// locksim's own (nil while crashed, and for a LockServerCmd or
// LockServerFunc).
func (sb *Sandbox) LockServer(name string) *lockserver.Server {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if s := sb.slot(name); s != nil {
		if own, ok := s.run.(ownServer); ok {
			return own.Server
		}
	}
	return nil
}

// LogDir is where the processes of Config.LockServerCmd write their
// standard output and error ("" for other lock servers).
func (sb *Sandbox) LogDir() string { return sb.logDir }

func hostPort(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Host
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
