package run

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenarios"
	"github.com/locksim/locksim/sim"
)

// Options control a headless scenario run.
type Options struct {
	// Seed overrides the scenario's seed when non-zero.
	Seed int64
	// OutDir receives OutDir/<scenario>/report.json and, per variant,
	// OutDir/<scenario>/<variant>/{history.jsonl,history.html,report.json}.
	// "" writes nothing.
	OutDir string
	// Progress receives one line per fault and phase (nil = discard).
	Progress io.Writer
	// CheckTimeout bounds each porcupine check. Default 30s.
	CheckTimeout time.Duration
	// Variants restricts the run to these variants (default all).
	Variants []string
	// Observe, when set, is called with every sandbox right after it started
	// and with the variant's name (the live view uses it to watch a
	// headless run).
	Observe func(sb *sim.Sandbox, variant string)
	// LockServerCmd, when set, runs the lock servers as processes of this
	// command line (sim.Config.LockServerCmd), whatever the scenario's
	// lockServers.command says. Their standard output and error go to the
	// variant's folder under OutDir.
	LockServerCmd string
	// LockServerFunc, when set, builds the lock servers in this process
	// from the caller's code (sim.Config.LockServerFunc): the seam of a
	// `go test` proof of a lock server of one's own.
	LockServerFunc sim.LockServerFunc
}

// Scenario runs every variant of sc (one fresh sandbox each) and checks
// each history against the scenario's expectations.
func Scenario(ctx context.Context, sc *scenarios.Scenario, opts Options) (*Report, error) {
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.CheckTimeout == 0 {
		opts.CheckTimeout = 30 * time.Second
	}
	seed := sc.Seed
	if opts.Seed != 0 {
		seed = opts.Seed
	}
	rep := &Report{Scenario: sc.Name, File: sc.Path, Description: sc.Description, Seed: seed, Pass: true}
	for _, v := range sc.VariantNames() {
		if len(opts.Variants) > 0 && !slices.Contains(opts.Variants, v) {
			continue
		}
		vr, err := variant(ctx, sc, v, seed, opts)
		if err != nil {
			return rep, fmt.Errorf("%s [%s]: %w", sc.Name, v, err)
		}
		rep.Variants = append(rep.Variants, *vr)
		rep.Pass = rep.Pass && vr.Pass
	}
	if opts.OutDir != "" {
		if err := writeJSON(filepath.Join(opts.OutDir, sc.Name, "report.json"), rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// Config turns a scenario variant into a sandbox configuration.
func Config(sc *scenarios.Scenario, eff scenarios.Effective, seed int64) sim.Config {
	return sim.Config{
		TickMs:        uint(sc.Raft.TickMs),
		ElectionMs:    uint(sc.Raft.ElectionMs),
		LockServers:   sc.Topology.LockServers,
		LockServerCmd: sc.LockServers.Command,
		Policy:        sc.Topology.Balancer,
		Clients:       sc.Topology.Clients,
		Unsafe:        eff.Unsafe,
		Auth:          sc.LockServers.Auth,
		Unfenced:      !eff.Fencing,
		Seed:          seed,
		// Memory stays flat however long the run: the recorder keeps the
		// recent operations for the live view and the Observer the last
		// minute of etcd's record; both stream all of theirs to disk for
		// the final check.
		HistoryKeep:      sim.RecentOps,
		StreamHistory:    true,
		EtcdRecordRetain: time.Minute,

		Balancers:      sc.Topology.Balancers,
		AdvertInterval: sc.VRRP.AdvertInterval,
		NoPreempt:      !eff.Preempt,
		Workload: sim.Workload{
			Resources: sc.Workload.Resources,
			TTL:       sc.Lock.TTL,
			Wait:      sc.Lock.Wait,
			Hold:      sc.Workload.Hold,
			Think:     sc.Workload.Think,
			Cycles:    sc.Workload.Cycles,
		},
	}
}

// variant runs one variant of sc in a fresh sandbox: boot, play the
// workload and the fault plan for the scenario's duration, settle (heal,
// drain, resolve unknown outcomes from etcd), check and report. It is long
// because it is the one sequence of a run, step after step.
func variant(ctx context.Context, sc *scenarios.Scenario, variant string, seed int64, opts Options) (*VariantReport, error) {
	eff, err := sc.Resolve(variant)
	if err != nil {
		return nil, err
	}
	// Fault events and balancer transitions arrive from their own
	// goroutines: one line at a time.
	var progressMu sync.Mutex
	progress := func(format string, args ...any) {
		progressMu.Lock()
		defer progressMu.Unlock()
		fmt.Fprintf(opts.Progress, "[%s/%s] "+format+"\n", append([]any{sc.Name, variant}, args...)...)
	}
	cfg := Config(sc, eff, seed)
	if opts.LockServerCmd != "" {
		cfg.LockServerCmd = opts.LockServerCmd
	}
	if opts.LockServerFunc != nil {
		cfg.LockServerCmd, cfg.LockServerFunc = "", opts.LockServerFunc
	}
	if opts.OutDir != "" && cfg.LockServerCmd != "" {
		cfg.LogDir = filepath.Join(opts.OutDir, sc.Name, variant)
	}
	sb, err := sim.New(cfg)
	if err != nil {
		return nil, err
	}
	defer sb.Close()
	balancers := fmt.Sprintf("balancer (%s)", sc.Topology.Balancer)
	if n := sc.Topology.Balancers; n > 1 {
		balancers = fmt.Sprintf("%d balancers (%s) behind a virtual address, VRRP preempt=%v", n, sc.Topology.Balancer, eff.Preempt)
	}
	progress("booting 3 etcd members, %d lock servers (%s), %s, %d clients; fencing=%v",
		sc.Topology.LockServers, describeLockServer(cfg), balancers, sc.Topology.Clients, eff.Fencing)
	if err := sb.Start(ctx); err != nil {
		return nil, err
	}
	if opts.Observe != nil {
		opts.Observe(sb, variant)
	}
	recordUnsafe(sb, sc, eff)
	unsubscribe := sb.Faults().Subscribe(func(ev faults.Event) {
		switch {
		case ev.Error != "":
			progress("%6.2fs %s %s: FAILED: %s", ev.Start.Seconds(), ev.Fault, ev.Target, ev.Error)
		case ev.Active:
			progress("%6.2fs %s %s -> %s %s", ev.Start.Seconds(), ev.Fault, ev.Target, ev.Resolved, ev.Note)
		default:
			progress("%6.2fs %s %s ended", ev.End.Seconds(), ev.Fault, ev.Resolved)
		}
	})
	defer unsubscribe()
	defer sb.SubscribeBalancers(func(ev sim.BalancerEvent) {
		progress("%6.2fs %s %s -> %s: %s", ev.At.Seconds(), ev.Balancer, ev.From, ev.To, ev.Reason)
	})()

	samples, err := play(ctx, sb, sc, seed)
	if err != nil {
		return nil, err
	}
	if sc.Final != scenarios.FinalHeal {
		progress("final: no heal requested; faults were undone to stop the run")
	}
	elapsed := sb.Elapsed()
	ops, err := sb.History()
	if err != nil {
		return nil, err // the recorded history cannot be read back: nothing to check
	}
	ops, resolved, unexplained, err := settle(ctx, sb, ops)
	if err != nil {
		progress("could not read etcd's history to resolve unknown outcomes: %v", err)
	}
	vr := &VariantReport{
		Variant: variant, Fencing: eff.Fencing, Unsafe: eff.Unsafe, LockServer: describeLockServer(cfg),
		Resolved: resolved, Unexplained: unexplained, Faults: sb.Events(), Duration: elapsed, Latency: acquireLatency(ops),
		Runtime: samples, Balancers: sb.BalancerEvents(),
	}
	if vip := sb.VirtualAddress(); vip != nil {
		vr.VIPMoves = vip.Moves()
	}
	progress("checking %d operations", len(ops))
	if err := check(vr, ops, sc, opts); err != nil {
		return nil, err
	}
	progress("lock=%s resource=%s pass=%v", vr.Lock, vr.Resource, vr.Pass)
	return vr, nil
}

// play runs the workload and the scenario's fault plan for its duration (or
// until every client finished its cycles), sampling the runtime, then undoes
// every fault — `final: heal`, and in any case before stopping: a paused
// client must not stay frozen — and lets the clients finish their cycle.
func play(ctx context.Context, sb *sim.Sandbox, sc *scenarios.Scenario, seed int64) ([]RuntimeSample, error) {
	runCtx, cancel := context.WithTimeout(ctx, sc.Duration)
	defer cancel()
	runner := &faults.Runner{Steps: sc.Plan(seed), Injector: sb.Faults(), Start: sb.Started()}
	sb.StartWorkload(runCtx)
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_, _ = runner.Run(runCtx)
	}()
	workDone := make(chan struct{})
	go func() { _ = sb.WaitWorkload(runCtx); close(workDone) }()
	interval := max(sc.Duration/10, time.Second)
	var lh *liveHeap // long runs only
	var fine <-chan time.Time
	if interval >= 30*time.Second {
		lh = &liveHeap{}
		t := time.NewTicker(liveHeapEvery)
		defer t.Stop()
		fine = t.C
	}
	samples := []RuntimeSample{sampleRuntime(sb.Elapsed(), lh)}
	every := time.NewTicker(interval)
	defer every.Stop()
wait:
	for {
		select {
		case <-runCtx.Done():
			break wait
		case <-workDone:
			cancel()
			break wait
		case <-every.C:
			samples = append(samples, sampleRuntime(sb.Elapsed(), lh))
		case <-fine:
			lh.sample()
		}
	}
	<-runDone
	samples = append(samples, sampleRuntime(sb.Elapsed(), lh))
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	healCtx, hcancel := context.WithTimeout(ctx, 20*time.Second)
	runner.HealAll(healCtx)
	hcancel()
	drainCtx, dcancel := context.WithTimeout(ctx, sc.Lock.Wait+10*time.Second)
	sb.DrainWorkload(drainCtx)
	dcancel()
	return samples, nil
}

// settle returns the recorded history with the unknown outcomes settled from
// what etcd recorded (history.Resolve), how many it settled, and the grants
// etcd made that no answer accounts for (history.Unexplained). If etcd's
// record cannot be read, the history is returned as recorded, with the error.
//
// A lock server that is not locksim's own keeps its locks in etcd its own
// way: there is no record to read, and unknown outcomes stay unknown.
func settle(ctx context.Context, sb *sim.Sandbox, ops []history.Op) ([]history.Op, int, []history.Grant, error) {
	if sb.Config().Custom() {
		return ops, 0, nil, nil
	}
	if slices.ContainsFunc(ops, func(op history.Op) bool { return op.Outcome == history.Unknown }) {
		// A request a client gave up on may still be inside a lock server;
		// every etcd call there ends within EtcdTimeout. Let them settle
		// before reading what etcd recorded.
		sleepCtx(ctx, sb.Config().EtcdTimeout+500*time.Millisecond)
	}
	syncCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sb.Observer().Sync(syncCtx); err != nil {
		return ops, 0, nil, err
	}
	rec, err := sb.EtcdRecord(ops)
	if err != nil {
		return ops, 0, nil, err
	}
	ops, n := history.Resolve(ops, rec)
	return ops, n, history.Unexplained(ops, rec), nil
}

// check checks ops, compares the verdicts with the scenario's expectations
// and, with an output folder, writes the variant's history.jsonl,
// history.html and report.json.
func check(vr *VariantReport, ops []history.Op, sc *scenarios.Scenario, opts Options) error {
	copts := history.Options{Timeout: opts.CheckTimeout, Annotations: sim.Annotations(vr.Faults), Explain: true}
	if opts.OutDir != "" {
		vr.Dir = filepath.Join(opts.OutDir, sc.Name, vr.Variant)
		if err := os.MkdirAll(vr.Dir, 0o755); err != nil {
			return err
		}
		vr.HistoryPath = filepath.Join(vr.Dir, "history.jsonl")
		if err := writeHistory(vr.HistoryPath, ops); err != nil {
			return err
		}
		copts.VisualizePath = filepath.Join(vr.Dir, "history.html")
	}
	res := history.Check(ops, copts)
	vr.Check, vr.Lock, vr.Resource, vr.HTMLPath = res, res.Lock, res.Resource, res.VisualizationPath
	vr.Expect, vr.Failures = expectations(sc.Expect[vr.Variant], res)
	if f := unexplainedFailure(vr.Unexplained, vr.Unsafe); f != "" {
		vr.Failures = append(vr.Failures, f)
	}
	vr.Pass = len(vr.Failures) == 0
	if vr.Dir != "" {
		return writeJSON(filepath.Join(vr.Dir, "report.json"), vr)
	}
	return nil
}

// recordUnsafe logs a deliberately broken lock server (a negative control)
// in the sandbox's fault log, for the whole run: the timeline shows it and
// an explanation of the violation it causes can name it.
func recordUnsafe(sb *sim.Sandbox, sc *scenarios.Scenario, eff scenarios.Effective) {
	if eff.Unsafe == "" {
		return
	}
	key := "variants." + eff.Variant + ".lockServers.unsafe"
	line := sc.Line(key)
	if line == 0 {
		key, line = "lockServers.unsafe", sc.Line("lockServers.unsafe")
	}
	sb.Faults().Record(faults.Event{
		Fault: "unsafe", Target: "lockservers", Resolved: strings.Join(sb.Addresses().LockServerNames(), " "),
		Note:   "every lock server runs a deliberately broken " + eff.Unsafe + " acquire (a negative control)",
		Source: fmt.Sprintf("%s (%s:%d)", key, filepath.Base(sc.Path), line),
	})
}

// describeLockServer says which lock server a sandbox runs.
func describeLockServer(cfg sim.Config) string {
	switch {
	case cfg.LockServerCmd != "":
		return "command: " + cfg.LockServerCmd
	case cfg.LockServerFunc != nil:
		return "a lock server function"
	case cfg.Unsafe != "":
		return "locksim's own, unsafe: " + cfg.Unsafe
	}
	return "locksim's own"
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
