package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenarios"
)

// RunOptions control a headless scenario run.
type RunOptions struct {
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
	// (the web UI uses it to watch a headless run).
	Observe func(*Sandbox)
}

// Report is the outcome of one scenario file: one VariantReport per variant.
type Report struct {
	Scenario    string          `json:"scenario"`
	File        string          `json:"file"`
	Description string          `json:"description,omitempty"`
	Seed        int64           `json:"seed"`
	Pass        bool            `json:"pass"`
	Variants    []VariantReport `json:"variants"`
}

// VariantReport is what one run of the schedule showed.
type VariantReport struct {
	Variant     string            `json:"variant"`
	Fencing     bool              `json:"fencing"`
	Unsafe      string            `json:"unsafe,omitempty"`
	Pass        bool              `json:"pass"`
	Expect      map[string]string `json:"expect,omitempty"`
	Failures    []string          `json:"failures,omitempty"`
	Lock        history.Verdict   `json:"lock"`
	Resource    history.Verdict   `json:"resource"`
	Check       history.Result    `json:"check"`
	Resolved    int               `json:"resolvedUnknowns"`
	Latency     Latency           `json:"acquireLatency"`
	Faults      []faults.Event    `json:"faults"`
	Duration    time.Duration     `json:"durationNs"`
	Runtime     []RuntimeSample   `json:"runtime"`
	Dir         string            `json:"dir,omitempty"`
	HistoryPath string            `json:"historyPath,omitempty"`
	HTMLPath    string            `json:"htmlPath,omitempty"`
}

// RuntimeSample is the process's goroutine count and heap at one moment of
// a run: a soak's samples must stay flat.
type RuntimeSample struct {
	At         time.Duration `json:"atNs"`
	Goroutines int           `json:"goroutines"`
	HeapMB     float64       `json:"heapMB"`               // heap in use, garbage included
	LiveHeapMB float64       `json:"liveHeapMB,omitempty"` // heap still reachable after a forced GC (long runs only)
}

// sampleRuntime samples the runtime; with live it first forces a garbage
// collection, to tell live memory from garbage (long runs sample once a
// minute, so the cost to the workload is small; short runs skip it).
func sampleRuntime(at time.Duration, live bool) RuntimeSample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := RuntimeSample{At: at, Goroutines: runtime.NumGoroutine(), HeapMB: float64(ms.HeapInuse) / (1 << 20)}
	if live {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		s.LiveHeapMB = float64(ms.HeapAlloc) / (1 << 20)
	}
	return s
}

// Latency holds percentiles of successful acquires, in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50Ms"`
	P95   float64 `json:"p95Ms"`
	P99   float64 `json:"p99Ms"`
	Max   float64 `json:"maxMs"`
}

// RunScenario runs every variant of sc (one fresh sandbox each) and checks
// each history against the scenario's expectations.
func RunScenario(ctx context.Context, sc *scenarios.Scenario, opts RunOptions) (*Report, error) {
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
		vr, err := runVariant(ctx, sc, v, seed, opts)
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

// ScenarioConfig turns a scenario variant into a sandbox configuration.
func ScenarioConfig(sc *scenarios.Scenario, eff scenarios.Effective, seed int64) Config {
	return Config{
		TickMs:      uint(sc.Raft.TickMs),
		ElectionMs:  uint(sc.Raft.ElectionMs),
		LockServers: sc.Topology.LockServers,
		Policy:      sc.Topology.Balancer,
		Clients:     sc.Topology.Clients,
		Unsafe:      eff.Unsafe,
		Auth:        sc.LockServers.Auth,
		Unfenced:    !eff.Fencing,
		Seed:        seed,
		Workload: Workload{
			Resources: sc.Workload.Resources,
			TTL:       sc.Lock.TTL,
			Wait:      sc.Lock.Wait,
			Hold:      sc.Workload.Hold,
			Think:     sc.Workload.Think,
			Cycles:    sc.Workload.Cycles,
		},
	}
}

// Steps translates a scenario's steps and nemesis into the fault runner's plan.
func Steps(sc *scenarios.Scenario, seed int64) []faults.Step {
	var steps []faults.Step
	for i, s := range sc.Steps {
		fs := faults.Step{
			At: s.At, Fault: s.Fault, Target: s.Target,
			Isolate: s.Isolate, Groups: s.Groups, Bridge: s.Bridge, From: s.From, To: s.To,
			Link: s.Link, Latency: s.Latency, Jitter: s.Jitter,
			For: s.For, RestartAfter: s.RestartAfter, Skew: s.Skew, Note: s.Note,
			Source: fmt.Sprintf("step %d (%s:%d)", i+1, filepath.Base(sc.Path), s.Line),
		}
		if s.When != nil {
			fs.When = &faults.Condition{Holder: s.When.Holder, Phase: s.When.Phase, Timeout: s.When.Timeout}
		}
		steps = append(steps, fs)
	}
	if sc.Nemesis != nil {
		rng := rand.New(rand.NewPCG(uint64(seed), 0x6e656d))
		steps = append(steps, faults.Nemesis(faults.NemesisSpec{
			Every: sc.Nemesis.Every, Faults: sc.Nemesis.Faults, For: sc.Nemesis.For,
			Members: sc.Topology.Etcd, LockServers: sc.Topology.LockServers, Clients: sc.Topology.Clients,
		}, sc.Duration, rng)...)
		slices.SortStableFunc(steps, func(a, b faults.Step) int { return int(a.At - b.At) })
	}
	return steps
}

func runVariant(ctx context.Context, sc *scenarios.Scenario, variant string, seed int64, opts RunOptions) (*VariantReport, error) {
	eff, err := sc.Resolve(variant)
	if err != nil {
		return nil, err
	}
	progress := func(format string, args ...any) {
		fmt.Fprintf(opts.Progress, "[%s/%s] "+format+"\n", append([]any{sc.Name, variant}, args...)...)
	}
	sb, err := New(ScenarioConfig(sc, eff, seed))
	if err != nil {
		return nil, err
	}
	defer sb.Close()
	progress("booting 3 etcd members, %d lock servers, balancer (%s), %d clients; fencing=%v",
		sc.Topology.LockServers, sc.Topology.Balancer, sc.Topology.Clients, eff.Fencing)
	if err := sb.Start(ctx); err != nil {
		return nil, err
	}
	if opts.Observe != nil {
		opts.Observe(sb)
	}

	runCtx, cancel := context.WithTimeout(ctx, sc.Duration)
	defer cancel()
	runner := &faults.Runner{
		Steps: Steps(sc, seed),
		Env:   sb,
		Start: sb.start,
		OnEvent: func(ev faults.Event) {
			sb.publishEvent(ev)
			switch {
			case ev.Error != "":
				progress("%6.2fs %s %s: FAILED: %s", ev.Start.Seconds(), ev.Fault, ev.Target, ev.Error)
			case ev.Active:
				progress("%6.2fs %s %s -> %s %s", ev.Start.Seconds(), ev.Fault, ev.Target, ev.Resolved, ev.Note)
			default:
				progress("%6.2fs %s %s ended", ev.End.Seconds(), ev.Fault, ev.Resolved)
			}
		},
	}
	sb.StartWorkload(runCtx)
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_, _ = runner.Run(runCtx)
	}()
	// The run lasts its duration (or until every client finished its cycles).
	workDone := make(chan struct{})
	go func() { _ = sb.WaitWorkload(runCtx); close(workDone) }()
	interval := max(sc.Duration/10, time.Second)
	live := interval >= 30*time.Second
	samples := []RuntimeSample{sampleRuntime(sb.now(), live)}
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
			samples = append(samples, sampleRuntime(sb.now(), live))
		}
	}
	<-runDone
	samples = append(samples, sampleRuntime(sb.now(), live))
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	// Undo every fault (final: heal, and in any case before stopping: a
	// paused client must not stay frozen), then let the clients finish the
	// cycle they are in.
	healCtx, hcancel := context.WithTimeout(ctx, 20*time.Second)
	runner.HealAll(healCtx)
	hcancel()
	if sc.Final != scenarios.FinalHeal {
		progress("final: no heal requested; faults were undone to stop the run")
	}
	drainCtx, dcancel := context.WithTimeout(ctx, sc.Lock.Wait+10*time.Second)
	sb.DrainWorkload(drainCtx)
	dcancel()
	elapsed := sb.now()

	ops := sb.rec.Ops()
	if slices.ContainsFunc(ops, func(op history.Op) bool { return op.Outcome == history.Unknown }) {
		// A request a client gave up on may still be inside a lock server;
		// every etcd call there ends within EtcdTimeout. Let them settle
		// before reading what etcd recorded.
		sleepCtx(ctx, sb.cfg.EtcdTimeout+500*time.Millisecond)
	}
	syncCtx, scancel := context.WithTimeout(ctx, 10*time.Second)
	serr := sb.observer.Sync(syncCtx)
	scancel()
	resolved := 0
	if serr == nil {
		ops, resolved = sb.resolveUnknownAcquires(ops)
	} else {
		progress("could not read etcd's history to resolve unknown outcomes: %v", serr)
	}
	events := runner.Events()

	vr := &VariantReport{
		Variant: variant, Fencing: eff.Fencing, Unsafe: eff.Unsafe,
		Resolved: resolved, Faults: events, Duration: elapsed, Latency: acquireLatency(ops), Runtime: samples,
	}
	copts := history.Options{Timeout: opts.CheckTimeout, Annotations: annotations(events)}
	if opts.OutDir != "" {
		vr.Dir = filepath.Join(opts.OutDir, sc.Name, variant)
		if err := os.MkdirAll(vr.Dir, 0o755); err != nil {
			return nil, err
		}
		vr.HistoryPath = filepath.Join(vr.Dir, "history.jsonl")
		if err := writeHistory(vr.HistoryPath, ops); err != nil {
			return nil, err
		}
		copts.VisualizePath = filepath.Join(vr.Dir, "history.html")
	}
	progress("checking %d operations", len(ops))
	res := history.Check(ops, copts)
	vr.Check, vr.Lock, vr.Resource, vr.HTMLPath = res, res.Lock, res.Resource, res.VisualizationPath
	vr.Expect, vr.Failures = expectations(sc.Expect[variant], res)
	vr.Pass = len(vr.Failures) == 0
	if vr.Dir != "" {
		if err := writeJSON(filepath.Join(vr.Dir, "report.json"), vr); err != nil {
			return nil, err
		}
	}
	progress("lock=%s resource=%s pass=%v", res.Lock, res.Resource, vr.Pass)
	return vr, nil
}

// expectations compares a check result with what the scenario expects.
func expectations(want scenarios.Expect, got history.Result) (map[string]string, []string) {
	exp := map[string]string{}
	var fails []string
	check := func(name, want string, got history.Verdict) {
		if want == "" {
			return
		}
		exp[name] = want
		if string(got) != want {
			fails = append(fails, fmt.Sprintf("%s: expected %s, got %s", name, want, got))
		}
	}
	check("lock", want.Lock, got.Lock)
	check("resource", want.Resource, got.Resource)
	if want.MaxUnknown != nil {
		exp["maxUnknown"] = fmt.Sprint(*want.MaxUnknown)
		if n := got.Counts.Unknown(); n > *want.MaxUnknown {
			fails = append(fails, fmt.Sprintf("unknown outcomes: expected at most %d, got %d", *want.MaxUnknown, n))
		}
	}
	return exp, fails
}

func annotations(events []faults.Event) []history.Annotation {
	var out []history.Annotation
	for _, ev := range events {
		end := ev.End
		if ev.Active || end < ev.Start {
			end = ev.Start
		}
		desc := ev.Note
		if ev.Error != "" {
			desc = "failed: " + ev.Error
		}
		out = append(out, history.Annotation{
			Label: ev.Fault + " " + ev.Resolved, Target: ev.Resolved,
			Start: int64(ev.Start), End: int64(end), Description: desc,
		})
	}
	return out
}

func acquireLatency(ops []history.Op) Latency {
	var ds []float64
	for _, op := range ops {
		if op.Op == "acquire" && op.Outcome == history.OK && op.Return != nil {
			ds = append(ds, float64(*op.Return-op.Call)/1e6)
		}
	}
	slices.Sort(ds)
	l := Latency{Count: len(ds)}
	if len(ds) == 0 {
		return l
	}
	pct := func(p float64) float64 { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	l.P50, l.P95, l.P99, l.Max = pct(0.50), pct(0.95), pct(0.99), ds[len(ds)-1]
	return l
}

func writeHistory(path string, ops []history.Op) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := history.WriteJSONL(f, ops); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
