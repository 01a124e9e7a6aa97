package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/loadbalancer"
	"github.com/locksim/locksim/lockserver"
)

// Benchmark suites, in the order Run runs them.
const (
	Raw      = "raw"      // the lock cycle's own etcd calls with clientv3: the ceiling
	RawGrant = "rawgrant" // raw with a lease granted per lock and revoked at release (no lease pool)
	Direct   = "direct"   // HTTP on one lock server
	Balancer = "balancer" // the full path: our balancer (http mode) in front of every lock server
	HAProxy  = "haproxy"  // Debian's haproxy (mode http) in front of the same lock servers
	// BalancerTCP and HAProxyTCP: the same balancers in their layer-4 mode
	// (connections balanced, bytes copied unparsed)
	BalancerTCP = "balancer-tcp"
	HAProxyTCP  = "haproxy-tcp"
	Mutex       = "mutex"    // etcd's concurrency.Mutex, one session per client
	Failover    = "failover" // leader crash -> first successful acquire
	// BalancerFailover: a balancer pair's master crash -> first successful
	// acquire through the virtual address
	BalancerFailover = "balancer-failover"
	Scale            = "scale"   // acquire latency with many locks held; memory per lock
	Checker          = "checker" // history.Generate + history.Check
)

// Suites lists every suite name accepted by Config.Only.
var Suites = []string{Raw, RawGrant, Direct, Balancer, BalancerTCP, HAProxy, HAProxyTCP, Mutex, Failover, BalancerFailover, Scale, Checker}

// ErrConfig is wrapped by every benchmark configuration error.
var ErrConfig = errors.New("bench: bad config")

// Key modes of a throughput row.
const (
	KeysDistinct = "distinct" // every client locks its own key
	KeysOne      = "one"      // every client locks the same key (acquires queue)
)

// Config configures Run. Zero fields take the documented defaults.
type Config struct {
	// Duration of each measured point. Default 2s (Quick: 200ms).
	Duration time.Duration
	// Concurrency levels (clients in parallel). Default 1,16,64,256 (Quick: 1,8).
	Concurrency []int
	// Only runs these suites (see Suites). Default: all.
	Only []string
	// Fsync makes etcd fsync its WAL (off by default, like the sandbox).
	Fsync bool
	// Quick shrinks every suite so that the whole run takes seconds: a smoke
	// test of the command, not a measurement.
	Quick bool
	// HAProxy is the haproxy binary. Default "haproxy" from PATH; when it is
	// not found the haproxy suites are skipped with a note.
	HAProxy string
	// FailoverTrials is the number of leader crashes per Raft timing, and
	// of balancer master crashes per advert interval. Default 10 (Quick: 1,
	// fast timing only).
	FailoverTrials int
	// ScaleHeld are the numbers of held locks of the scale suite.
	// Default 0, 10000, 100000 (Quick: 0, 200).
	ScaleHeld []int
	// CheckerOps are the history sizes of the checker suite.
	// Default 1000, 10000, 100000 (Quick: 1000).
	CheckerOps []int
	// BalancerExe, when set, is the locksim binary: our balancer rows
	// (balancer, balancer-tcp) then run it as a child process, `serve
	// balancer --mode http|tcp`, as haproxy runs, instead of in this
	// process; their CPU is counted from /proc. Default: in this process.
	BalancerExe string
	// Progress receives one line per finished row. Default: discard.
	Progress io.Writer
}

func (c *Config) setDefaults() error {
	if c.Duration == 0 {
		c.Duration = 2 * time.Second
		if c.Quick {
			c.Duration = 200 * time.Millisecond
		}
	}
	if len(c.Concurrency) == 0 {
		c.Concurrency = []int{1, 16, 64, 256}
		if c.Quick {
			c.Concurrency = []int{1, 8}
		}
	}
	if len(c.Only) == 0 {
		c.Only = Suites
	}
	if c.HAProxy == "" {
		c.HAProxy = "haproxy"
	}
	if c.FailoverTrials == 0 {
		c.FailoverTrials = 10
		if c.Quick {
			c.FailoverTrials = 1
		}
	}
	if len(c.ScaleHeld) == 0 {
		c.ScaleHeld = []int{0, 10_000, 100_000}
		if c.Quick {
			c.ScaleHeld = []int{0, 200}
		}
	}
	if len(c.CheckerOps) == 0 {
		c.CheckerOps = []int{1_000, 10_000, 100_000}
		if c.Quick {
			c.CheckerOps = []int{1_000}
		}
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	switch {
	case c.Duration < 0:
		return fmt.Errorf("%w: negative duration", ErrConfig)
	case c.FailoverTrials < 0:
		return fmt.Errorf("%w: negative failover trials", ErrConfig)
	}
	for _, n := range c.Concurrency {
		if n < 1 || n > 4096 {
			return fmt.Errorf("%w: concurrency must be 1..4096, got %d", ErrConfig, n)
		}
	}
	for _, s := range c.Only {
		if !slices.Contains(Suites, s) {
			return fmt.Errorf("%w: unknown suite %q (want %s)", ErrConfig, s, strings.Join(Suites, ", "))
		}
	}
	return nil
}

func (c *Config) runs(suite string) bool { return slices.Contains(c.Only, suite) }

// Row is one measured point. Throughput rows fill the cycle fields;
// failover rows put the median time to the first successful acquire in
// P50Ms; checker rows put the check time in P50Ms.
type Row struct {
	Name         string  `json:"name"`
	Concurrency  int     `json:"concurrency"`
	Keys         string  `json:"keys"`
	CyclesPerSec float64 `json:"cyclesPerSec"`
	P50Ms        float64 `json:"p50Ms"`
	P95Ms        float64 `json:"p95Ms"`
	P99Ms        float64 `json:"p99Ms"`

	Cycles int64 `json:"cycles,omitempty"`
	// Errors counts failed acquires or releases (never expected).
	Errors int64 `json:"errors,omitempty"`
	// WritesPerCycle is Raft entries committed per cycle (the leader's
	// commit index delta / cycles): lease grants and revokes count.
	WritesPerCycle float64 `json:"writesPerCycle,omitempty"`
	// GrantTxnsPerCycle is the lock servers' grant attempts (acquire txns)
	// per cycle: every acquire tries once on arrival; a queued one tries
	// again only when it is woken by a release that did not hand it the
	// lock (or by an expiry).
	GrantTxnsPerCycle float64 `json:"grantTxnsPerCycle,omitempty"`
	// WakeupsPerCycle is the queued acquires woken per cycle: releases that
	// handed the lock over, plus grant attempts of queued acquires (grant
	// txns minus one arrival try per acquire sent). 1.0 on one contended
	// key is one wake-up per release (no herd); 0 on free keys.
	WakeupsPerCycle float64 `json:"wakeupsPerCycle,omitempty"`
	// AllocsPerCycle is heap allocations per cycle in the whole process
	// (clients, balancer, lock servers and etcd members alike).
	AllocsPerCycle float64 `json:"allocsPerCycle,omitempty"`
	// Held is the number of other locks held during the point (scale rows).
	Held int `json:"held,omitempty"`
	// DBBytesPerLock and RSSBytesPerLock: etcd's db size (per member) and
	// the process RSS grown per held lock (scale rows).
	DBBytesPerLock  float64 `json:"dbBytesPerLock,omitempty"`
	RSSBytesPerLock float64 `json:"rssBytesPerLock,omitempty"`
	// CPUUsPerCycle is the CPU time per cycle, in microseconds, of each
	// component (CPUComponents: clients, balancer, haproxy, lockserver,
	// etcd, runtime): where the shared cores go (see cpu.go).
	CPUUsPerCycle map[string]float64 `json:"cpuUsPerCycle,omitempty"`
	Note          string             `json:"note,omitempty"`
}

// Report is the result of Run.
type Report struct {
	Rows  []Row    `json:"rows"`
	Notes []string `json:"notes,omitempty"`
}

// Run runs the selected suites, each throughput point on one embedded
// cluster shared by every path so that ratios are fair. Rows come out in
// the order they were measured.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	rep := &Report{}
	add := func(r Row) {
		rep.Rows = append(rep.Rows, r)
		fmt.Fprintln(cfg.Progress, formatRow(r))
	}
	needEnv := false
	for _, s := range []string{Raw, RawGrant, Direct, Balancer, BalancerTCP, HAProxy, HAProxyTCP, Mutex, Failover, BalancerFailover, Scale} {
		needEnv = needEnv || cfg.runs(s)
	}
	if needEnv {
		env, err := newBenchEnv(ctx, benchEnvConfig{Fsync: cfg.Fsync, HAProxy: cfg.runs(HAProxy), HAProxyTCP: cfg.runs(HAProxyTCP),
			HAProxyPath: cfg.HAProxy, BalancerExe: cfg.BalancerExe})
		if err != nil {
			return nil, err
		}
		rep.Notes = append(rep.Notes, env.haproxyNotes...)
		err = runOnEnv(ctx, env, cfg, add)
		if cerr := env.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return rep, err
		}
	}
	if cfg.runs(Failover) && !cfg.Quick {
		// The classroom (default) Raft timing needs its own cluster.
		env, err := newBenchEnv(ctx, benchEnvConfig{Fsync: cfg.Fsync, TickMs: 100, ElectionMs: 1000})
		if err != nil {
			return rep, err
		}
		row, err := env.failover(ctx, "failover-default", cfg.FailoverTrials)
		if cerr := env.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return rep, err
		}
		add(row)
	}
	if cfg.runs(Checker) {
		for _, n := range cfg.CheckerOps {
			add(benchChecker(n))
		}
	}
	return rep, nil
}

// throughputPaths are the paths measured at every concurrency, in order.
var throughputPaths = []string{Raw, RawGrant, Direct, Balancer, BalancerTCP, HAProxy, HAProxyTCP, Mutex}

func runOnEnv(ctx context.Context, env *benchEnv, cfg Config, add func(Row)) error {
	// Warm up every path (connections, sessions, caches).
	for _, name := range throughputPaths {
		if !cfg.Quick && cfg.runs(name) && env.cycler(name) != nil {
			if _, err := env.measure(ctx, name, KeysDistinct, 16, min(cfg.Duration, 300*time.Millisecond), 0); err != nil {
				return err
			}
		}
	}
	for _, keys := range []string{KeysDistinct, KeysOne} {
		for _, n := range cfg.Concurrency {
			for _, name := range throughputPaths {
				if !cfg.runs(name) || env.cycler(name) == nil {
					continue
				}
				if (name == Raw || name == RawGrant) && keys == KeysOne {
					continue // raw etcd has no queue: a contended raw cycle would be a busy loop
				}
				row, err := env.measure(ctx, name, keys, n, cfg.Duration, 0)
				if err != nil {
					return err
				}
				add(row)
			}
		}
	}
	if cfg.runs(Failover) {
		row, err := env.failover(ctx, "failover-fast", cfg.FailoverTrials)
		if err != nil {
			return err
		}
		add(row)
	}
	if cfg.runs(BalancerFailover) {
		// The sandbox's fast pace, then the design's default interval.
		intervals := []struct {
			name     string
			interval time.Duration
		}{{"balancer-failover-fast", loadbalancer.FastAdvertInterval}, {"balancer-failover-default", loadbalancer.DefaultAdvertInterval}}
		if cfg.Quick {
			intervals = intervals[:1]
		}
		for _, iv := range intervals {
			row, err := env.balancerFailover(ctx, iv.name, iv.interval, cfg.FailoverTrials)
			if err != nil {
				return err
			}
			add(row)
		}
	}
	if cfg.runs(Scale) {
		if err := env.scale(ctx, cfg, add); err != nil {
			return err
		}
	}
	return nil
}

// benchEnvConfig configures one benchmark environment.
type benchEnvConfig struct {
	Fsync               bool
	TickMs, ElectionMs  uint
	HAProxy, HAProxyTCP bool // start haproxy in mode http, in mode tcp
	HAProxyPath         string
	BalancerExe         string // our balancer as child processes of this binary
}

// benchEnv is one embedded cluster with three lock servers, our balancer in
// each mode, optionally haproxy in each, and etcd clients for the raw and
// Mutex paths. Unlike
// a Sandbox it has no network emulator: it measures the product, not the
// fault injector.
type benchEnv struct {
	cluster      *cluster.Cluster
	servers      []*lockserver.Server
	lb           *loadbalancer.Balancer // http mode
	lbTCP        *loadbalancer.Balancer // tcp mode
	lbProc       *childProc             // with BalancerExe: our balancer, http mode
	lbTCPProc    *childProc             // with BalancerExe: our balancer, tcp mode
	haproxy      *childProc             // mode http
	haproxyTCP   *childProc             // mode tcp
	haproxyNotes []string
	etcd         []*clientv3.Client
	tr           *http.Transport
	hc           *http.Client
	seq          atomic.Int64
	bg           sync.WaitGroup // asynchronous revokes of the raw path
}

func newBenchEnv(ctx context.Context, cfg benchEnvConfig) (env *benchEnv, err error) {
	env = &benchEnv{}
	defer func() {
		if err != nil {
			_ = env.Close()
		}
	}()
	c, err := cluster.New(cluster.Config{TickMs: cfg.TickMs, ElectionMs: cfg.ElectionMs, UnsafeNoFsync: !cfg.Fsync})
	if err != nil {
		return nil, err
	}
	env.cluster = c
	if err := labeled(ctx, cpuEtcd, c.Start); err != nil {
		return nil, err
	}
	urls := c.ClientURLs()
	backends := make([]string, 0, 3)
	for i := range 3 {
		s, err := lockserver.New(lockserver.Config{Name: component.Name(component.LockServer, i+1), Endpoints: urls})
		if err != nil {
			return nil, err
		}
		env.servers = append(env.servers, s)
		if err := labeled(ctx, cpuLockServer, s.Start); err != nil {
			return nil, err
		}
		backends = append(backends, "http://"+s.Addr())
	}
	if err := env.startBalancers(ctx, cfg, backends); err != nil {
		return nil, err
	}
	err = labeled(ctx, cpuClients, func(context.Context) error { // the raw and Mutex paths' own etcd clients
		for range 3 {
			cli, err := clientv3.New(clientv3.Config{Endpoints: urls, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				return err
			}
			env.etcd = append(env.etcd, cli)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	env.tr = &http.Transport{Proxy: nil, MaxIdleConns: 0, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 90 * time.Second}
	env.hc = &http.Client{Transport: env.tr}
	return env, nil
}

// startBalancers starts the design's balancer (round robin, a health check
// every 2 s) in each of its modes — in this process, or as child processes
// with cfg.BalancerExe — and haproxy in each mode cfg asks for (skipped
// with a note when it cannot start).
func (env *benchEnv) startBalancers(ctx context.Context, cfg benchEnvConfig, backends []string) error {
	for _, mode := range []string{loadbalancer.ModeHTTP, loadbalancer.ModeTCP} {
		lb, err := loadbalancer.New(loadbalancer.Config{Mode: mode, Backends: backends, HealthInterval: 2 * time.Second})
		if err != nil {
			return err
		}
		if mode == loadbalancer.ModeTCP {
			env.lbTCP = lb
		} else {
			env.lb = lb
		}
		if err := labeled(ctx, cpuBalancer, lb.Start); err != nil {
			return err
		}
	}
	if cfg.BalancerExe != "" {
		for _, p := range []struct {
			mode string
			proc **childProc
		}{{loadbalancer.ModeHTTP, &env.lbProc}, {loadbalancer.ModeTCP, &env.lbTCPProc}} {
			var err error
			if *p.proc, err = startBalancerProc(ctx, cfg.BalancerExe, p.mode, backends); err != nil {
				return err
			}
		}
	}
	for _, ha := range []struct {
		on   bool
		mode string
		proc **childProc
	}{{cfg.HAProxy, "http", &env.haproxy}, {cfg.HAProxyTCP, "tcp", &env.haproxyTCP}} {
		if !ha.on {
			continue
		}
		path, err := exec.LookPath(cfg.HAProxyPath)
		if err != nil {
			env.haproxyNotes = append(env.haproxyNotes, fmt.Sprintf("haproxy (mode %s) skipped: %s not found (apt-get install haproxy)", ha.mode, cfg.HAProxyPath))
		} else if *ha.proc, err = startHAProxy(ctx, path, ha.mode, backends); err != nil {
			env.haproxyNotes = append(env.haproxyNotes, fmt.Sprintf("haproxy (mode %s) skipped: %v", ha.mode, err))
		}
	}
	return nil
}

// Close stops haproxy, the clients, the balancer, the lock servers and the cluster.
func (env *benchEnv) Close() error {
	env.bg.Wait()
	var errs []error
	for _, h := range []*childProc{env.lbProc, env.lbTCPProc, env.haproxy, env.haproxyTCP} {
		if h != nil {
			errs = append(errs, h.Close())
		}
	}
	if env.tr != nil {
		env.tr.CloseIdleConnections()
	}
	for _, c := range env.etcd {
		errs = append(errs, c.Close())
	}
	for _, lb := range []*loadbalancer.Balancer{env.lb, env.lbTCP} {
		if lb != nil {
			errs = append(errs, lb.Close())
		}
	}
	for _, s := range env.servers {
		errs = append(errs, s.Close())
	}
	if env.cluster != nil {
		errs = append(errs, env.cluster.Close())
	}
	return errors.Join(errs...)
}
