package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/loadbalancer"
	"github.com/locksim/locksim/lockserver"
)

// Benchmark suites, in the order RunBench runs them.
const (
	BenchRaw      = "raw"      // the lock cycle's own etcd calls with clientv3: the ceiling
	BenchRawPool  = "rawpool"  // raw with a pooled lease per client (KeepAliveOnce instead of grant+revoke)
	BenchDirect   = "direct"   // HTTP on one lock server
	BenchBalancer = "balancer" // the full path: our balancer in front of every lock server
	BenchHAProxy  = "haproxy"  // Debian's haproxy in front of the same lock servers
	BenchMutex    = "mutex"    // etcd's concurrency.Mutex, one session per client
	BenchFailover = "failover" // leader crash -> first successful acquire
	BenchScale    = "scale"    // acquire latency with many locks held; memory per lock
	BenchChecker  = "checker"  // history.Generate + history.Check
)

// BenchSuites lists every suite name accepted by BenchConfig.Only.
var BenchSuites = []string{BenchRaw, BenchRawPool, BenchDirect, BenchBalancer, BenchHAProxy, BenchMutex, BenchFailover, BenchScale, BenchChecker}

// ErrBench is wrapped by every benchmark configuration error.
var ErrBench = errors.New("sim: bad bench config")

// Key modes of a throughput row.
const (
	KeysDistinct = "distinct" // every client locks its own key
	KeysOne      = "one"      // every client locks the same key (acquires queue)
)

// BenchConfig configures RunBench. Zero fields take the documented defaults.
type BenchConfig struct {
	// Duration of each measured point. Default 2s (Quick: 200ms).
	Duration time.Duration
	// Concurrency levels (clients in parallel). Default 1,16,64,256 (Quick: 1,8).
	Concurrency []int
	// Only runs these suites (see BenchSuites). Default: all.
	Only []string
	// Fsync makes etcd fsync its WAL (off by default, like the sandbox).
	Fsync bool
	// Quick shrinks every suite so that the whole run takes seconds: a smoke
	// test of the command, not a measurement.
	Quick bool
	// HAProxy is the haproxy binary. Default "haproxy" from PATH; when it is
	// not found the haproxy suite is skipped with a note.
	HAProxy string
	// FailoverTrials is the number of leader crashes per Raft timing.
	// Default 10 (Quick: 1, fast timing only).
	FailoverTrials int
	// ScaleHeld are the numbers of held locks of the scale suite.
	// Default 0, 10000, 100000 (Quick: 0, 200).
	ScaleHeld []int
	// CheckerOps are the history sizes of the checker suite.
	// Default 1000, 10000, 100000 (Quick: 1000).
	CheckerOps []int
	// Progress receives one line per finished row. Default: discard.
	Progress io.Writer
}

func (c *BenchConfig) setDefaults() error {
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
		c.Only = BenchSuites
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
		return fmt.Errorf("%w: negative duration", ErrBench)
	case c.FailoverTrials < 0:
		return fmt.Errorf("%w: negative failover trials", ErrBench)
	}
	for _, n := range c.Concurrency {
		if n < 1 || n > 4096 {
			return fmt.Errorf("%w: concurrency must be 1..4096, got %d", ErrBench, n)
		}
	}
	for _, s := range c.Only {
		if !slices.Contains(BenchSuites, s) {
			return fmt.Errorf("%w: unknown suite %q (want %s)", ErrBench, s, strings.Join(BenchSuites, ", "))
		}
	}
	return nil
}

func (c *BenchConfig) runs(suite string) bool { return slices.Contains(c.Only, suite) }

// BenchRow is one measured point. Throughput rows fill the cycle fields;
// failover rows put the median time to the first successful acquire in
// P50Ms; checker rows put the check time in P50Ms.
type BenchRow struct {
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
	// again each time it is woken.
	GrantTxnsPerCycle float64 `json:"grantTxnsPerCycle,omitempty"`
	// WakeupsPerCycle is the grant attempts of queued acquires per cycle
	// (grant txns minus one arrival try per acquire sent): 1.0 on one
	// contended key is one wake-up per release (no herd); 0 on free keys.
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
	Note            string  `json:"note,omitempty"`
}

// BenchReport is the result of RunBench.
type BenchReport struct {
	Rows  []BenchRow `json:"rows"`
	Notes []string   `json:"notes,omitempty"`
}

// RunBench runs the selected suites, each throughput point on one embedded
// cluster shared by every path so that ratios are fair. Rows come out in
// the order they were measured.
func RunBench(ctx context.Context, cfg BenchConfig) (*BenchReport, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	rep := &BenchReport{}
	add := func(r BenchRow) {
		rep.Rows = append(rep.Rows, r)
		fmt.Fprintln(cfg.Progress, formatRow(r))
	}
	needEnv := false
	for _, s := range []string{BenchRaw, BenchRawPool, BenchDirect, BenchBalancer, BenchHAProxy, BenchMutex, BenchFailover, BenchScale} {
		needEnv = needEnv || cfg.runs(s)
	}
	if needEnv {
		env, err := newBenchEnv(ctx, benchEnvConfig{Fsync: cfg.Fsync, HAProxy: cfg.runs(BenchHAProxy), HAProxyPath: cfg.HAProxy})
		if err != nil {
			return nil, err
		}
		if env.haproxyNote != "" {
			rep.Notes = append(rep.Notes, env.haproxyNote)
		}
		err = runOnEnv(ctx, env, cfg, add)
		if cerr := env.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return rep, err
		}
	}
	if cfg.runs(BenchFailover) && !cfg.Quick {
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
	if cfg.runs(BenchChecker) {
		for _, n := range cfg.CheckerOps {
			add(benchChecker(n))
		}
	}
	return rep, nil
}

// throughputPaths are the paths measured at every concurrency, in order.
var throughputPaths = []string{BenchRaw, BenchRawPool, BenchDirect, BenchBalancer, BenchHAProxy, BenchMutex}

func runOnEnv(ctx context.Context, env *benchEnv, cfg BenchConfig, add func(BenchRow)) error {
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
				if (name == BenchRaw || name == BenchRawPool) && keys == KeysOne {
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
	if cfg.runs(BenchFailover) {
		row, err := env.failover(ctx, "failover-fast", cfg.FailoverTrials)
		if err != nil {
			return err
		}
		add(row)
	}
	if cfg.runs(BenchScale) {
		if err := env.scale(ctx, cfg, add); err != nil {
			return err
		}
	}
	return nil
}

// benchEnvConfig configures one benchmark environment.
type benchEnvConfig struct {
	Fsync              bool
	TickMs, ElectionMs uint
	HAProxy            bool
	HAProxyPath        string
}

// benchEnv is one embedded cluster with three lock servers, our balancer,
// optionally haproxy, and etcd clients for the raw and Mutex paths. Unlike
// a Sandbox it has no network emulator: it measures the product, not the
// fault injector.
type benchEnv struct {
	cluster     *cluster.Cluster
	servers     []*lockserver.Server
	lb          *loadbalancer.Balancer
	haproxy     *haproxyProc
	haproxyNote string
	etcd        []*clientv3.Client
	tr          *http.Transport
	hc          *http.Client
	seq         atomic.Int64
	bg          sync.WaitGroup // asynchronous revokes of the raw path
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
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	env.cluster = c
	urls := c.ClientURLs()
	backends := make([]string, 0, 3)
	for i := range 3 {
		s, err := lockserver.New(lockserver.Config{Name: fmt.Sprintf("lockserver-%d", i+1), Endpoints: urls})
		if err != nil {
			return nil, err
		}
		if err := s.Start(ctx); err != nil {
			return nil, err
		}
		env.servers = append(env.servers, s)
		backends = append(backends, "http://"+s.Addr())
	}
	// The design's balancer: round robin, a health check every 2 s.
	lb, err := loadbalancer.New(loadbalancer.Config{Backends: backends, HealthInterval: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	if err := lb.Start(ctx); err != nil {
		return nil, err
	}
	env.lb = lb
	for range 3 {
		cli, err := clientv3.New(clientv3.Config{Endpoints: urls, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return nil, err
		}
		env.etcd = append(env.etcd, cli)
	}
	env.tr = &http.Transport{Proxy: nil, MaxIdleConns: 0, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 90 * time.Second}
	env.hc = &http.Client{Transport: env.tr}
	if cfg.HAProxy {
		path, err := exec.LookPath(cfg.HAProxyPath)
		if err != nil {
			env.haproxyNote = fmt.Sprintf("haproxy skipped: %s not found (apt-get install haproxy)", cfg.HAProxyPath)
		} else if env.haproxy, err = startHAProxy(ctx, path, backends); err != nil {
			env.haproxyNote = fmt.Sprintf("haproxy skipped: %v", err)
		}
	}
	return env, nil
}

// Close stops haproxy, the clients, the balancer, the lock servers and the cluster.
func (env *benchEnv) Close() error {
	env.bg.Wait()
	var errs []error
	if env.haproxy != nil {
		errs = append(errs, env.haproxy.Close())
	}
	if env.tr != nil {
		env.tr.CloseIdleConnections()
	}
	for _, c := range env.etcd {
		errs = append(errs, c.Close())
	}
	if env.lb != nil {
		errs = append(errs, env.lb.Close())
	}
	for _, s := range env.servers {
		errs = append(errs, s.Close())
	}
	if env.cluster != nil {
		errs = append(errs, env.cluster.Close())
	}
	return errors.Join(errs...)
}

// benchTTL is the TTL of every benchmark lock; benchWait bounds a queued acquire.
const (
	benchTTL  = 30 * time.Second
	benchWait = 20 * time.Second
)

// cycler runs lock cycles on one path. newWorker prepares one client
// (worker i of a point) and returns its cycle and cleanup.
type cycler interface {
	newWorker(ctx context.Context, i int) (worker, error)
}

type worker interface {
	// acquire takes key and returns what release needs.
	acquire(ctx context.Context, key string) (any, error)
	release(ctx context.Context, key string, held any) error
	close()
}

func (env *benchEnv) cycler(name string) cycler {
	switch name {
	case BenchRaw:
		return rawCycler{env: env}
	case BenchRawPool:
		return rawCycler{env: env, pool: true}
	case BenchDirect:
		return httpCycler{env: env, base: "http://" + env.servers[0].Addr()}
	case BenchBalancer:
		return httpCycler{env: env, base: env.lb.URL()}
	case BenchHAProxy:
		if env.haproxy == nil {
			return nil
		}
		return httpCycler{env: env, base: env.haproxy.url}
	case BenchMutex:
		return mutexCycler{env}
	}
	return nil
}

// rawCycler issues exactly the etcd calls of the lock server's cycle:
// LeaseGrant + the grant txn, then the compare-and-delete txn + a
// background LeaseRevoke. With pool, each client keeps one lease and
// refreshes it with KeepAliveOnce (answered by the leader, no Raft write)
// instead of the grant and the revoke: the ceiling of a lease pool.
type rawCycler struct {
	env  *benchEnv
	pool bool
}

type rawWorker struct {
	env   *benchEnv
	cli   *clientv3.Client
	lease clientv3.LeaseID // pool only
}

type rawHeld struct {
	lease clientv3.LeaseID
	hash  string
}

func (c rawCycler) newWorker(ctx context.Context, i int) (worker, error) {
	w := rawWorker{env: c.env, cli: c.env.etcd[i%len(c.env.etcd)]}
	if c.pool {
		l, err := w.cli.Grant(ctx, int64(benchTTL/time.Second))
		if err != nil {
			return nil, err
		}
		w.lease = l.ID
	}
	return w, nil
}

func (w rawWorker) acquire(ctx context.Context, key string) (any, error) {
	id := w.lease
	if id == 0 {
		l, err := w.cli.Grant(clientv3.WithRequireLeader(ctx), int64(benchTTL/time.Second))
		if err != nil {
			return nil, err
		}
		id = l.ID
	} else if _, err := w.cli.KeepAliveOnce(clientv3.WithRequireLeader(ctx), id); err != nil {
		return nil, err
	}
	// Like a lock token's hash: unique per grant.
	sum := sha256.Sum256([]byte(key + strconv.FormatInt(int64(id), 16) + strconv.FormatInt(time.Now().UnixNano(), 16)))
	h := rawHeld{lease: id, hash: hex.EncodeToString(sum[:])}
	lk := "/locks/" + key
	resp, err := w.cli.Txn(clientv3.WithRequireLeader(ctx)).If(
		clientv3.Compare(clientv3.CreateRevision(lk), "=", 0),
		clientv3.Compare(clientv3.CreateRevision("/waiters/"+key+"#/").WithPrefix(), "=", 0),
	).Then(
		clientv3.OpPut(lk, h.hash, clientv3.WithLease(id)),
		clientv3.OpPut("/lockinfo/"+key, `{"ownerId":"bench","ttl":30,"acquiredAt":"2026-01-01T00:00:00Z"}`, clientv3.WithLease(id)),
	).Commit()
	switch {
	case err != nil:
		return nil, err
	case !resp.Succeeded:
		return nil, errors.New("sim: raw grant txn failed: lock held")
	}
	return h, nil
}

func (w rawWorker) release(ctx context.Context, key string, held any) error {
	h := held.(rawHeld)
	lk := "/locks/" + key
	resp, err := w.cli.Txn(clientv3.WithRequireLeader(ctx)).If(
		clientv3.Compare(clientv3.Value(lk), "=", h.hash),
		clientv3.Compare(clientv3.LeaseValue(lk), "=", h.lease),
	).Then(clientv3.OpDelete(lk), clientv3.OpDelete("/lockinfo/"+key)).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return errors.New("sim: raw release txn failed: not the holder")
	}
	if w.lease != 0 {
		return nil // the pooled lease is kept for the next acquire
	}
	w.env.bg.Go(func() {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _ = w.cli.Revoke(rctx, h.lease)
	})
	return nil
}

func (w rawWorker) close() {
	if w.lease != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _ = w.cli.Revoke(ctx, w.lease)
	}
}

// httpCycler is the lock API over HTTP at base (a lock server, our balancer or haproxy).
type httpCycler struct {
	env  *benchEnv
	base string
}

type httpWorker struct{ c *lockserver.Client }

func (c httpCycler) newWorker(_ context.Context, i int) (worker, error) {
	return httpWorker{&lockserver.Client{BaseURL: c.base, HTTP: c.env.hc, ClientID: fmt.Sprintf("bench-%d", i)}}, nil
}

func (w httpWorker) acquire(ctx context.Context, key string) (any, error) {
	g, err := w.c.Acquire(ctx, key, benchTTL, benchWait)
	if err != nil {
		return nil, err
	}
	return g.LockToken, nil
}

func (w httpWorker) release(ctx context.Context, key string, held any) error {
	return w.c.Release(ctx, key, held.(string))
}

func (httpWorker) close() {}

// mutexCycler is etcd's own recipe: concurrency.Mutex, one session per client.
type mutexCycler struct{ env *benchEnv }

type mutexWorker struct {
	sess *concurrency.Session
	mu   map[string]*concurrency.Mutex
}

func (c mutexCycler) newWorker(ctx context.Context, i int) (worker, error) {
	s, err := concurrency.NewSession(c.env.etcd[i%len(c.env.etcd)], concurrency.WithTTL(int(benchTTL/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	return &mutexWorker{sess: s, mu: map[string]*concurrency.Mutex{}}, nil
}

func (w *mutexWorker) acquire(ctx context.Context, key string) (any, error) {
	m := w.mu[key]
	if m == nil {
		m = concurrency.NewMutex(w.sess, "/mutex/"+key)
		w.mu[key] = m
	}
	ctx, cancel := context.WithTimeout(ctx, benchWait)
	defer cancel()
	return m, m.Lock(ctx)
}

func (w *mutexWorker) release(ctx context.Context, _ string, held any) error {
	return held.(*concurrency.Mutex).Unlock(ctx)
}

func (w *mutexWorker) close() { _ = w.sess.Close() }

// commitIndex is the highest commit index among running members.
func (env *benchEnv) commitIndex() uint64 {
	var idx uint64
	for _, st := range env.cluster.Status() {
		idx = max(idx, st.CommitIndex)
	}
	return idx
}

func (env *benchEnv) grantTxns() int64 {
	var n int64
	for _, s := range env.servers {
		n += s.Stats().GrantTxns
	}
	return n
}

// measure runs n clients of path name for d, each doing acquire+release
// cycles back to back, and returns the row.
func (env *benchEnv) measure(ctx context.Context, name, keys string, n int, d time.Duration, held int) (BenchRow, error) {
	cyc := env.cycler(name)
	run := env.seq.Add(1)
	workers := make([]worker, n)
	for i := range workers {
		w, err := cyc.newWorker(ctx, i)
		if err != nil {
			for _, w := range workers[:i] {
				w.close()
			}
			return BenchRow{}, fmt.Errorf("sim: bench %s: %w", name, err)
		}
		workers[i] = w
	}
	defer func() {
		for _, w := range workers {
			w.close()
		}
	}()
	lats := make([][]time.Duration, n)
	var cycles, errs, attempts atomic.Int64
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	idx0, txn0 := env.commitIndex(), env.grantTxns()
	// The point ends after d, or later at the first finished cycle (a slow,
	// loaded machine must still yield a number): requests in flight then are
	// cancelled and not counted.
	pctx, cancel := context.WithTimeout(ctx, d+time.Minute)
	defer cancel()
	first := make(chan struct{})
	var firstOnce sync.Once
	timer := time.AfterFunc(d, func() {
		select {
		case <-first:
		case <-pctx.Done():
		}
		cancel()
	})
	defer timer.Stop()
	start := time.Now()
	var wg sync.WaitGroup
	for i, w := range workers {
		key := fmt.Sprintf("bench/%d/%s", run, "hot")
		if keys == KeysDistinct {
			key = fmt.Sprintf("bench/%d/%d", run, i)
		}
		wg.Go(func() {
			for pctx.Err() == nil {
				t0 := time.Now()
				attempts.Add(1)
				h, err := w.acquire(pctx, key)
				if err != nil {
					if pctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				lats[i] = append(lats[i], time.Since(t0))
				// Release even past the deadline: the next point must find every key free.
				rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
				err = w.release(rctx, key, h)
				rcancel()
				if err != nil {
					errs.Add(1)
					continue
				}
				cycles.Add(1)
				firstOnce.Do(func() { close(first) })
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	idx1, txn1 := env.commitIndex(), env.grantTxns()
	runtime.ReadMemStats(&ms1)
	all := slices.Concat(lats...)
	row := BenchRow{Name: name, Concurrency: n, Keys: keys, Cycles: cycles.Load(), Errors: errs.Load(), Held: held}
	if c := float64(row.Cycles); c > 0 {
		row.CyclesPerSec = c / elapsed.Seconds()
		row.WritesPerCycle = float64(idx1-idx0) / c
		row.AllocsPerCycle = float64(ms1.Mallocs-ms0.Mallocs) / c
		if name == BenchDirect || name == BenchBalancer || name == BenchHAProxy {
			row.GrantTxnsPerCycle = float64(txn1-txn0) / c
			row.WakeupsPerCycle = max(0, float64(txn1-txn0-attempts.Load())/c)
		}
	}
	row.P50Ms, row.P95Ms, row.P99Ms = Percentile(all, 50), Percentile(all, 95), Percentile(all, 99)
	return row, nil
}

// Percentile returns the p-th percentile (nearest rank) of ds in ms, 0 for none.
func Percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return float64(s[rank-1]) / float64(time.Millisecond)
}

// failover crashes the leader trials times and measures, through our
// balancer, the time from the crash to the first successful acquire. A new
// acquire attempt starts every failoverProbe (each with a generous timeout),
// so the result is when the service works again, not a client's retry policy.
func (env *benchEnv) failover(ctx context.Context, name string, trials int) (BenchRow, error) {
	c := &lockserver.Client{BaseURL: env.lb.URL(), HTTP: env.hc, ClientID: "failover"}
	var got []time.Duration
	run := env.seq.Add(1)
	var attempt atomic.Int64
	try := func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		key := fmt.Sprintf("failover/%d/%d", run, attempt.Add(1))
		g, err := c.Acquire(actx, key, 5*time.Second, 0)
		if err != nil {
			return err
		}
		return c.Release(actx, key, g.LockToken)
	}
	for range trials {
		leader, err := env.cluster.WaitLeader(ctx)
		if err != nil {
			return BenchRow{}, err
		}
		// Warm: the path works before the crash.
		if _, err := firstSuccess(ctx, 10*time.Second, try); err != nil {
			return BenchRow{}, fmt.Errorf("sim: failover: path not ready before crash: %w", err)
		}
		crashed := make(chan error, 1)
		go func() { crashed <- env.cluster.Crash(leader) }()
		d, err := firstSuccess(ctx, 30*time.Second, try)
		if cerr := <-crashed; cerr != nil {
			return BenchRow{}, cerr
		}
		if err != nil {
			return BenchRow{}, fmt.Errorf("sim: failover: no acquire after crash: %w", err)
		}
		got = append(got, d)
		if err := env.cluster.Restart(ctx, leader); err != nil {
			return BenchRow{}, err
		}
	}
	return BenchRow{Name: name, Concurrency: 1, Keys: KeysDistinct, Cycles: int64(len(got)),
		P50Ms: Percentile(got, 50), P95Ms: Percentile(got, 95), P99Ms: Percentile(got, 99),
		Note: fmt.Sprintf("leader crash -> first successful acquire+release through the balancer, %d trials, p50 = median", len(got))}, nil
}

// failoverProbe is the interval between two failover attempts.
const failoverProbe = 5 * time.Millisecond

// firstSuccess starts f every failoverProbe until one call succeeds or limit
// passes, and returns the time from the start to the first success. The
// other calls are cancelled and waited for.
func firstSuccess(ctx context.Context, limit time.Duration, f func(context.Context) error) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan time.Duration, 1)
	var lastErr atomic.Pointer[error]
	tick := time.NewTicker(failoverProbe)
	defer tick.Stop()
	for {
		wg.Go(func() {
			err := f(ctx)
			if err == nil {
				select {
				case done <- time.Since(start):
				default:
				}
				return
			}
			lastErr.Store(&err)
		})
		select {
		case d := <-done:
			cancel()
			return d, nil
		case <-ctx.Done():
			err := ctx.Err()
			if p := lastErr.Load(); p != nil {
				err = fmt.Errorf("%w (last: %w)", err, *p)
			}
			return 0, err
		case <-tick.C:
		}
	}
}

// retryUntil calls f until it succeeds, pausing 5 ms between attempts, for
// at most limit.
func retryUntil(ctx context.Context, limit time.Duration, f func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// scale measures acquire latency through the balancer at 16 clients while
// more and more other locks are held, each with its own lease, written
// straight into etcd in the lock server's format.
func (env *benchEnv) scale(ctx context.Context, cfg BenchConfig, add func(BenchRow)) error {
	held := 0
	runtime.GC()
	rss0, db0 := rssBytes(), env.dbSize(ctx)
	for _, want := range cfg.ScaleHeld {
		if want > held {
			if err := env.fill(ctx, held, want); err != nil {
				return err
			}
			held = want
		}
		row, err := env.measure(ctx, BenchBalancer, KeysDistinct, 16, cfg.Duration, held)
		if err != nil {
			return err
		}
		row.Name = "scale"
		row.Note = fmt.Sprintf("%d other locks held (own lease each), through the balancer", held)
		if held > 0 {
			runtime.GC()
			row.RSSBytesPerLock = float64(rssBytes()-rss0) / float64(held)
			row.DBBytesPerLock = float64(env.dbSize(ctx)-db0) / float64(held)
		}
		add(row)
	}
	return nil
}

// fill holds locks from..to-1 with 64 writers: per lock its own lease,
// and the lock and info keys of 32 locks in one txn.
func (env *benchEnv) fill(ctx context.Context, from, to int) error {
	const batch = 32
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for w := range 64 {
		cli := env.etcd[w%len(env.etcd)]
		wg.Go(func() {
			for firstErr.Load() == nil {
				lo := next.Add(batch) - batch
				hi := min(lo+batch, int64(to))
				if lo >= hi {
					return
				}
				var ops []clientv3.Op
				var err error
				for i := lo; i < hi && err == nil; i++ {
					var l *clientv3.LeaseGrantResponse
					if l, err = cli.Grant(ctx, 600); err == nil {
						key := fmt.Sprintf("held/%d", i)
						ops = append(ops,
							clientv3.OpPut("/locks/"+key, strings.Repeat("0", 64), clientv3.WithLease(l.ID)),
							clientv3.OpPut("/lockinfo/"+key, `{"ownerId":"filler","ttl":600,"acquiredAt":"2026-01-01T00:00:00Z"}`, clientv3.WithLease(l.ID)))
					}
				}
				if err == nil {
					_, err = cli.Txn(ctx).Then(ops...).Commit()
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return fmt.Errorf("sim: bench: filling held locks: %w", *p)
	}
	return nil
}

// dbSize is the largest backend size in use among the members.
func (env *benchEnv) dbSize(ctx context.Context) int64 {
	var size int64
	for _, u := range env.cluster.ClientURLs() {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := env.etcd[0].Status(sctx, u)
		cancel()
		if err == nil {
			size = max(size, st.DbSizeInUse)
		}
	}
	return size
}

// rssBytes is this process's resident set size (0 where /proc is missing).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// benchChecker times Generate and Check of a history of n operations by 16
// clients on 4 resources.
func benchChecker(n int) BenchRow {
	t0 := time.Now()
	ops := history.Generate(history.GenConfig{Seed: 1, Ops: n, Clients: 16, Resources: 4})
	gen := time.Since(t0)
	res := history.Check(ops, history.Options{Timeout: 2 * time.Minute})
	ms := float64(res.Elapsed) / float64(time.Millisecond)
	return BenchRow{Name: "checker", Concurrency: 16, Keys: "4 resources", Cycles: int64(n),
		P50Ms: ms, P95Ms: ms, P99Ms: ms,
		Note: fmt.Sprintf("%d ops: generate %s, check %s, lock %s, resource %s", n,
			gen.Round(time.Millisecond), res.Elapsed.Round(time.Millisecond), res.Lock, res.Resource)}
}

// formatRow is a one-line summary of a row (progress output).
func formatRow(r BenchRow) string {
	return fmt.Sprintf("%-16s c=%-3d keys=%-11s %9.0f cycles/s  p50 %7.2f ms  p95 %7.2f ms  p99 %7.2f ms  writes/cycle %.2f  errors %d %s",
		r.Name, r.Concurrency, r.Keys, r.CyclesPerSec, r.P50Ms, r.P95Ms, r.P99Ms, r.WritesPerCycle, r.Errors, r.Note)
}

// haproxyProc is a haproxy child process in front of the lock servers.
type haproxyProc struct {
	cmd  *exec.Cmd
	dir  string
	url  string
	done chan struct{}
	out  lockedWriter // haproxy's stdout and stderr
}

// HAProxyConfig is the design's haproxy configuration: round robin over the
// backends (host:port), an HTTP health check GET /health every 2 s.
func HAProxyConfig(listen string, backends []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 8192

defaults
    mode http
    option http-keep-alive
    timeout connect 2s
    timeout client 60s
    timeout server 60s

frontend locks
    bind %s
    default_backend lockservers

backend lockservers
    balance roundrobin
    option httpchk GET /health
`, listen)
	for i, be := range backends {
		fmt.Fprintf(&b, "    server lockserver-%d %s check inter 2s\n", i+1, strings.TrimPrefix(be, "http://"))
	}
	return b.String()
}

func startHAProxy(ctx context.Context, path string, backends []string) (*haproxyProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "locksim-haproxy-")
	if err != nil {
		return nil, err
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(HAProxyConfig(listen, backends)), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	h := &haproxyProc{dir: dir, url: "http://" + listen, done: make(chan struct{})}
	h.cmd = exec.Command(path, "-db", "-q", "-f", cfgPath)
	h.cmd.Stdout, h.cmd.Stderr = &h.out, &h.out
	if err := h.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	go func() { _ = h.cmd.Wait(); close(h.done) }()
	// Ready when a request goes through to a lock server.
	hc := &http.Client{Timeout: time.Second}
	err = retryUntil(ctx, 5*time.Second, func() error {
		select {
		case <-h.done:
			return nil
		default:
		}
		resp, err := hc.Get(h.url + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("haproxy: /health: HTTP %d", resp.StatusCode)
		}
		return nil
	})
	hc.CloseIdleConnections()
	select {
	case <-h.done:
		err = fmt.Errorf("haproxy exited: %s", strings.TrimSpace(h.output()))
	default:
	}
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	return h, nil
}

func (h *haproxyProc) output() string {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	return h.out.b.String()
}

// Close kills haproxy and waits for it.
func (h *haproxyProc) Close() error {
	select {
	case <-h.done:
	default:
		_ = h.cmd.Process.Kill()
		<-h.done
	}
	return os.RemoveAll(h.dir)
}

type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
