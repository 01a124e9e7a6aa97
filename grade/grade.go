package grade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/conformance"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/run"
	"github.com/locksim/locksim/scenarios"
	"github.com/locksim/locksim/sim"
)

// ErrBadInput is wrapped by every error of Run that is the lock server's or
// the caller's fault, not a finding: the command does not start or never
// answers GET /health, an answer is not the documented JSON, a scenario has
// no variant to grade.
var ErrBadInput = errors.New("grade: bad input")

// DefaultSeeds are the seeds every scenario runs on by default.
var DefaultSeeds = []int64{1, 2, 3}

// Config configures a grade.
type Config struct {
	// LockServerCmd is the lock server under grade, a command line with
	// {listen}, {name} and {etcd} (see sim.Config.LockServerCmd).
	LockServerCmd string
	// LockServerFunc is the lock server under grade, built in this process
	// (see sim.Config.LockServerFunc). With neither, locksim's own is graded.
	LockServerFunc sim.LockServerFunc
	// Scenarios are graded on their safe variants (see Targets). Default:
	// the safe catalogue (SafeCatalogue).
	Scenarios []*scenarios.Scenario
	// Seeds each scenario runs on. Default DefaultSeeds.
	Seeds []int64
	// SkipBattery leaves out the API conformance battery.
	SkipBattery bool
	// OutDir receives report.md, index.html, card.json, the battery's lock
	// server logs (battery/) and every run's folder (seed-N/SCENARIO/VARIANT).
	// Required.
	OutDir string
	// Progress receives one line per phase and fault (nil = discard).
	Progress io.Writer
	// CheckTimeout bounds each porcupine check. Default 60s.
	CheckTimeout time.Duration
}

// Target is one scenario and the variants of it that are graded.
type Target struct {
	Scenario *scenarios.Scenario
	Variants []string
}

// Targets picks the safe variants of each scenario: those that run the lock
// servers under grade (no unsafe switch) and that the scenario does not
// expect violated. A scenario with none is left out.
func Targets(scs []*scenarios.Scenario) []Target {
	var out []Target
	for _, sc := range scs {
		var vs []string
		for _, v := range sc.VariantNames() {
			eff, err := sc.Resolve(v)
			if err != nil || eff.Unsafe != "" || eff.Expect.Lock == scenarios.Violated || eff.Expect.Resource == scenarios.Violated {
				continue
			}
			vs = append(vs, v)
		}
		if len(vs) > 0 {
			out = append(out, Target{Scenario: sc, Variants: vs})
		}
	}
	return out
}

// SafeCatalogue returns the catalogue's safe variants (Targets of every
// catalogue scenario).
func SafeCatalogue() ([]Target, error) {
	all, err := scenarios.LoadAll()
	if err != nil {
		return nil, err
	}
	return Targets(all), nil
}

// Run grades the lock server of cfg. The error wraps ErrBadInput when the
// lock server cannot be graded at all; every finding is in the Card.
func Run(ctx context.Context, cfg Config) (*Card, error) {
	if cfg.OutDir == "" {
		return nil, fmt.Errorf("%w: an output folder is required", ErrBadInput)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if len(cfg.Seeds) == 0 {
		cfg.Seeds = DefaultSeeds
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = time.Minute
	}
	targets := Targets(cfg.Scenarios)
	if cfg.Scenarios == nil {
		var err error
		if targets, err = SafeCatalogue(); err != nil {
			return nil, err
		}
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: no scenario has a variant to grade (variants that switch unsafe on or expect a violation are not graded)", ErrBadInput)
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, err
	}
	card := &Card{LockServer: describe(cfg), Seeds: cfg.Seeds, Started: time.Now()}
	if !cfg.SkipBattery {
		rep, err := battery(ctx, cfg)
		if err != nil {
			return nil, err
		}
		card.Battery = rep
	}
	for _, seed := range cfg.Seeds {
		for _, t := range targets {
			runs, err := grade(ctx, cfg, t, seed)
			if err != nil {
				return nil, err
			}
			card.Runs = append(card.Runs, runs...)
		}
	}
	card.Elapsed = time.Since(card.Started)
	card.settle()
	return card, card.write(cfg.OutDir)
}

func describe(cfg Config) string {
	switch {
	case cfg.LockServerCmd != "":
		return cfg.LockServerCmd
	case cfg.LockServerFunc != nil:
		return "a lock server function (in this process)"
	}
	return "locksim's own lock server"
}

// battery runs the conformance battery against lockserver-1 of a sandbox of
// its own, with a way to take etcd's quorum away.
func battery(ctx context.Context, cfg Config) (*conformance.Report, error) {
	fmt.Fprintf(cfg.Progress, "[battery] booting 3 etcd members and 1 lock server\n")
	sb, err := sim.New(sim.Config{
		LockServers: 1, LockServerCmd: cfg.LockServerCmd, LockServerFunc: cfg.LockServerFunc,
		LogDir: filepath.Join(cfg.OutDir, "battery"), Workload: sim.Workload{Disabled: true},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	defer sb.Close()
	if err := sb.Start(ctx); err != nil {
		if errors.Is(err, sim.ErrBadLockServer) {
			return nil, fmt.Errorf("%w: %w", ErrBadInput, err)
		}
		return nil, err
	}
	url := sb.Addresses().LockServers[component.Name(component.LockServer, 1)]
	rep := conformance.Run(ctx, conformance.Config{BaseURL: url, Unavailable: quorumLoss(sb)})
	for _, c := range rep.Checks {
		fmt.Fprintf(cfg.Progress, "[battery] %-28s %s %s\n", c.Name, c.Result, c.Detail)
	}
	if err := rep.Protocol(); err != nil {
		return &rep, fmt.Errorf("%w: %s: %w", ErrBadInput, component.Name(component.LockServer, 1), err)
	}
	return &rep, ctx.Err()
}

// quorumLoss crashes two of the sandbox's three etcd members; the returned
// restore restarts them.
func quorumLoss(sb *sim.Sandbox) func(context.Context) (func(context.Context) error, error) {
	return func(ctx context.Context) (func(context.Context) error, error) {
		names := sb.Cluster().Names()[:2]
		for _, n := range names {
			if err := sb.Crash(n); err != nil {
				return nil, err
			}
		}
		return func(ctx context.Context) error {
			for _, n := range names {
				if err := sb.Restart(ctx, n); err != nil {
					return err
				}
			}
			return nil
		}, nil
	}
}

// grade runs one target on one seed.
func grade(ctx context.Context, cfg Config, t Target, seed int64) ([]RunResult, error) {
	out := filepath.Join(cfg.OutDir, fmt.Sprintf("seed-%d", seed))
	rep, err := run.Scenario(ctx, t.Scenario, run.Options{
		Seed: seed, OutDir: out, Progress: cfg.Progress, CheckTimeout: cfg.CheckTimeout, Variants: t.Variants,
		LockServerCmd: cfg.LockServerCmd, LockServerFunc: cfg.LockServerFunc,
	})
	if err != nil {
		if errors.Is(err, sim.ErrBadLockServer) {
			return nil, fmt.Errorf("%w: %w", ErrBadInput, err)
		}
		return nil, err
	}
	var runs []RunResult
	for _, v := range rep.Variants {
		r := RunResult{Scenario: t.Scenario.Name, Variant: v.Variant, Seed: seed, Lock: v.Lock, Resource: v.Resource,
			Acquires: v.Check.Counts.Acquire, Dir: v.Dir, HTML: v.HTMLPath, Faults: len(v.Faults)}
		for _, e := range v.Check.Explanations {
			r.Explanations = append(r.Explanations, e.Text)
		}
		if v.HistoryPath != "" {
			ops, err := readHistory(v.HistoryPath)
			if err != nil {
				return nil, err
			}
			r.Availability = availability(ops, v.Faults, v.Duration)
		}
		runs = append(runs, r)
	}
	return runs, nil
}

func readHistory(path string) ([]history.Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return history.ReadJSONL(f)
}
