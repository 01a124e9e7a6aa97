package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/locksim/locksim/conformance"
	"github.com/locksim/locksim/grade"
	"github.com/locksim/locksim/scenarios"
	"github.com/locksim/locksim/sim"
)

func (m *Main) grade(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("grade", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	var (
		cmd       = fs.String("lockserver-cmd", "", "the lock server to grade: a command line with {listen}, {name} and {etcd} (default: locksim's own)")
		seeds     = fs.Int("seeds", len(grade.DefaultSeeds), "run every scenario on seeds 1..N")
		out       = fs.String("out", filepath.Join("out", "grade"), "folder for report.md, index.html, card.json and every run's history")
		timeout   = fs.Duration("check-timeout", time.Minute, "give up a porcupine check after this long (verdict unknown)")
		noBattery = fs.Bool("no-battery", false, "skip the API conformance battery")
		url       = fs.String("url", "", "only run the API conformance battery against this running service (a lock server or a balancer), nothing else")
	)
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return exitBadInput
	}
	if *url != "" {
		if len(files) > 0 || *cmd != "" {
			return m.errorf("grade: --url runs the battery alone: no --lockserver-cmd, no scenario files")
		}
		return m.gradeURL(ctx, *url)
	}
	if *seeds < 1 {
		return m.errorf("grade: --seeds must be at least 1, got %d", *seeds)
	}
	var scs []*scenarios.Scenario
	if len(files) > 0 {
		if scs, err = m.parseGradeFiles(files); err != nil {
			return m.errorf("grade: %v", err)
		}
	}
	cfg := grade.Config{LockServerCmd: *cmd, Scenarios: scs, SkipBattery: *noBattery, OutDir: *out,
		Progress: m.Stderr, CheckTimeout: *timeout}
	for i := 1; i <= *seeds; i++ {
		cfg.Seeds = append(cfg.Seeds, int64(i))
	}
	card, err := grade.Run(ctx, cfg)
	if err != nil {
		if errors.Is(err, grade.ErrBadInput) {
			return m.errorf("grade: %s", badLine(err))
		}
		fmt.Fprintf(m.Stderr, "locksim: grade: %v\n", err)
		return exitFailed
	}
	fmt.Fprint(m.Stdout, card.Text())
	fmt.Fprintf(m.Stdout, "report: %s, %s\n", filepath.Join(*out, "report.md"), filepath.Join(*out, "index.html"))
	if !card.Pass {
		return exitFailed
	}
	return exitOK
}

// parseGradeFiles parses every file before anything starts; a file with no
// variant to grade is an error too.
func (m *Main) parseGradeFiles(files []string) ([]*scenarios.Scenario, error) {
	var scs []*scenarios.Scenario
	for _, f := range files {
		sc, err := scenarios.ParseFile(f)
		if err != nil {
			return nil, err
		}
		if len(grade.Targets([]*scenarios.Scenario{sc})) == 0 {
			return nil, fmt.Errorf("%s: no variant to grade (variants that switch unsafe on or expect a violation are not graded)", f)
		}
		scs = append(scs, sc)
	}
	return scs, nil
}

// badLine is the one line of a bad-input error, without the sentinels'
// prefixes: "lockserver-1 exited with status 127 before ...".
func badLine(err error) string {
	msg := err.Error()
	for _, p := range []string{grade.ErrBadInput.Error() + ": ", sim.ErrBadLockServer.Error() + ": "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return msg
}

// gradeURL runs the conformance battery alone against a running service.
func (m *Main) gradeURL(ctx context.Context, url string) int {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := conformance.Probe(pctx, nil, url)
	cancel()
	if err != nil {
		return m.errorf("grade: %s: %v", url, err)
	}
	rep := conformance.Run(ctx, conformance.Config{BaseURL: url})
	for _, c := range rep.Checks {
		fmt.Fprintf(m.Stdout, "%-28s %-4s %s\n", c.Name, c.Result, c.Detail)
	}
	pass, fail, skip := rep.Count()
	fmt.Fprintf(m.Stdout, "API conformance of %s: %d passed, %d failed, %d skipped\n", url, pass, fail, skip)
	if err := rep.Protocol(); err != nil {
		return m.errorf("grade: %s: %v", url, err)
	}
	if !rep.Pass() {
		return exitFailed
	}
	return exitOK
}
