package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
)

// commitIndex is the highest commit index among running members.
func (env *benchEnv) commitIndex() uint64 {
	var idx uint64
	for _, st := range env.cluster.Status() {
		idx = max(idx, st.CommitIndex)
	}
	return idx
}

// grantTxns counts the lock servers' grant txns and wake-ups: the releases
// that handed a lock over (which wake one waiter without a grant txn).
func (env *benchEnv) grantTxns() (txns, handOvers int64) {
	for _, s := range env.servers {
		st := s.Stats()
		txns, handOvers = txns+st.GrantTxns, handOvers+st.HandOvers
	}
	return txns, handOvers
}

// measure runs n clients of path name for d, each doing acquire+release
// cycles back to back, and returns the row. It is one measurement — start
// the workers, run, stop, read the counters — kept in one function so that
// nothing happens between its clock readings that the row does not count.
func (env *benchEnv) measure(ctx context.Context, name, keys string, n int, d time.Duration, held int) (Row, error) {
	cyc := env.cycler(name)
	run := env.seq.Add(1)
	workers := make([]worker, n)
	for i := range workers {
		w, err := cyc.newWorker(ctx, i)
		if err != nil {
			for _, w := range workers[:i] {
				w.close()
			}
			return Row{}, fmt.Errorf("sim: bench %s: %w", name, err)
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
	idx0 := env.commitIndex()
	txn0, ho0 := env.grantTxns()
	// The point ends after d, or later at the first finished cycle (a slow,
	// loaded machine must still yield a number): requests in flight then are
	// cancelled and not counted.
	pctx, cancel := context.WithTimeout(ctx, d+time.Minute)
	defer cancel()
	first := make(chan struct{})
	var firstOnce sync.Once
	proc, label := env.child(name)
	cpu := startCPU(proc.pid(), label)
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
			pprof.SetGoroutineLabels(pprof.WithLabels(pctx, pprof.Labels("component", cpuClients)))
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
	byComponent, cerr := cpu.stop()
	idx1 := env.commitIndex()
	txn1, ho1 := env.grantTxns()
	runtime.ReadMemStats(&ms1)
	all := slices.Concat(lats...)
	row := Row{Name: name, Concurrency: n, Keys: keys, Cycles: cycles.Load(), Errors: errs.Load(), Held: held}
	if c := float64(row.Cycles); c > 0 {
		row.CyclesPerSec = c / elapsed.Seconds()
		row.WritesPerCycle = float64(idx1-idx0) / c
		row.AllocsPerCycle = float64(ms1.Mallocs-ms0.Mallocs) / c
		if cerr == nil && len(byComponent) > 0 {
			row.CPUUsPerCycle = map[string]float64{}
			for k, v := range byComponent {
				row.CPUUsPerCycle[k] = float64(v.Microseconds()) / c
			}
		}
		if name != Raw && name != RawGrant && name != Mutex {
			row.GrantTxnsPerCycle = float64(txn1-txn0) / c
			row.WakeupsPerCycle = max(0, float64(txn1-txn0-attempts.Load()+ho1-ho0)/c)
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
func (env *benchEnv) failover(ctx context.Context, name string, trials int) (Row, error) {
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
			return Row{}, err
		}
		// Warm: the path works before the crash.
		if _, err := firstSuccess(ctx, 10*time.Second, try); err != nil {
			return Row{}, fmt.Errorf("sim: failover: path not ready before crash: %w", err)
		}
		crashed := make(chan error, 1)
		go func() { crashed <- env.cluster.Crash(leader) }()
		d, err := firstSuccess(ctx, 30*time.Second, try)
		if cerr := <-crashed; cerr != nil {
			return Row{}, cerr
		}
		if err != nil {
			return Row{}, fmt.Errorf("sim: failover: no acquire after crash: %w", err)
		}
		got = append(got, d)
		if err := env.cluster.Restart(ctx, leader); err != nil {
			return Row{}, err
		}
	}
	return Row{Name: name, Concurrency: 1, Keys: KeysDistinct, Cycles: int64(len(got)),
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
func (env *benchEnv) scale(ctx context.Context, cfg Config, add func(Row)) error {
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
		row, err := env.measure(ctx, Balancer, KeysDistinct, 16, cfg.Duration, held)
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
func benchChecker(n int) Row {
	t0 := time.Now()
	ops := history.Generate(history.GenConfig{Seed: 1, Ops: n, Clients: 16, Resources: 4})
	gen := time.Since(t0)
	res := history.Check(ops, history.Options{Timeout: 2 * time.Minute})
	ms := float64(res.Elapsed) / float64(time.Millisecond)
	return Row{Name: "checker", Concurrency: 16, Keys: "4 resources", Cycles: int64(n),
		P50Ms: ms, P95Ms: ms, P99Ms: ms,
		Note: fmt.Sprintf("%d ops: generate %s, check %s, lock %s, resource %s", n,
			gen.Round(time.Millisecond), res.Elapsed.Round(time.Millisecond), res.Lock, res.Resource)}
}
