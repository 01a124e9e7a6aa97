package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/locksim/locksim/live"
	"github.com/locksim/locksim/run"
	"github.com/locksim/locksim/scenarios"
	"github.com/locksim/locksim/sim"
	"github.com/locksim/locksim/sim/external"
	"github.com/locksim/locksim/web"
)

// run is `locksim run`: its flags, then every file in turn. It is long
// because it is the command's whole sequence, top to bottom.
func (m *Main) run(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	var (
		seed     = fs.Int64("seed", 0, "override every scenario's seed (0 = the file's own)")
		out      = fs.String("out", "out", "folder for report.json and, per variant, history.jsonl and history.html")
		asJSON   = fs.Bool("json", false, "print the reports as JSON instead of a table")
		timeout  = fs.Duration("check-timeout", 30*time.Second, "give up a porcupine check after this long (verdict unknown)")
		variants = fs.String("variant", "", "run only these variants (comma-separated)")
		ui       = fs.Bool("ui", false, "serve the visualizer during the run (at --web) and keep serving until Ctrl-C")
		webAddr  = fs.String("web", "127.0.0.1:8080", "with --ui: serve the visualizer here (port 0 = any free port)")
		lsCmd    = fs.String("lockserver-cmd", "", "run the lock servers as processes of this command line ({listen}, {name}, {etcd}) instead of locksim's own, whatever the files say")
	)
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return exitBadInput
	}
	if len(files) == 0 {
		return m.errorf("run: want at least one scenario file")
	}
	if *lsCmd != "" {
		if err := external.CheckCommand(*lsCmd); err != nil {
			return m.errorf("run: --lockserver-cmd: %v", err)
		}
	}
	scs, code := m.parseScenarios(files, splitList(*variants))
	if code >= 0 {
		return code
	}
	var relay *live.Relay
	if *ui {
		relay = live.NewRelay()
		defer relay.Close()
		srv, err := web.New(web.Config{Listen: *webAddr, Scenarios: live.Scenarios, HistoryHTML: relay.HistoryHTML, Export: live.Export}, relay, relay)
		if err == nil {
			err = srv.Start(ctx)
		}
		if err != nil {
			return m.errorf("run: --web %s: %v", *webAddr, err)
		}
		defer srv.Close()
		fmt.Fprintf(m.Stderr, "web UI: %s\n", srv.URL())
		if m.ReadyUI != nil {
			m.ReadyUI(srv.URL())
		}
	}
	var reports []*run.Report
	pass := true
	for _, sc := range scs {
		rec := &live.RunRecorder{Dir: filepath.Join(*out, sc.Name), Relay: relay, Live: relay != nil}
		rep, err := run.Scenario(ctx, sc, run.Options{
			Seed:          *seed,
			OutDir:        *out,
			Progress:      m.Stderr,
			CheckTimeout:  *timeout,
			Variants:      splitList(*variants),
			Observe:       rec.Observe,
			LockServerCmd: *lsCmd,
		})
		if ferr := rec.Finish(rep); ferr != nil {
			fmt.Fprintf(m.Stderr, "locksim: run: frames: %v\n", ferr)
		}
		if err != nil {
			if errors.Is(err, sim.ErrBadLockServer) || errors.Is(err, sim.ErrConfig) {
				return m.errorf("run: %s", badLine(err))
			}
			fmt.Fprintf(m.Stderr, "locksim: run: %v\n", err)
			return exitFailed
		}
		reports = append(reports, rep)
		pass = pass && rep.Pass
	}
	if *asJSON {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(reports)
	} else {
		m.printVerdicts(reports)
	}
	if *ui && ctx.Err() == nil {
		fmt.Fprintln(m.Stderr, "run finished; the web UI keeps serving until Ctrl-C")
		<-ctx.Done()
	}
	if !pass {
		return exitFailed
	}
	return exitOK
}

// parseScenarios parses every file (and checks the variants asked for)
// before anything starts; code >= 0 means stop with that exit code.
func (m *Main) parseScenarios(files, variants []string) ([]*scenarios.Scenario, int) {
	var scs []*scenarios.Scenario
	for _, f := range files {
		sc, err := scenarios.ParseFile(f)
		if err != nil {
			fmt.Fprintf(m.Stderr, "%v\n", err)
			return nil, exitBadInput
		}
		for _, v := range variants {
			if _, err := sc.Resolve(v); err != nil {
				return nil, m.errorf("run: %s: %v", f, err)
			}
		}
		scs = append(scs, sc)
	}
	return scs, -1
}

func (m *Main) printVerdicts(reports []*run.Report) {
	tw := tabwriter.NewWriter(m.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tVARIANT\tLOCK\tRESOURCE\tACQUIRES ok/fail/unknown\tRESOLVED\tSTALE\tOVERLAP\tFAULTS\tRESULT")
	for _, r := range reports {
		for _, v := range r.Variants {
			c := v.Check.Counts
			result := "PASS"
			if !v.Pass {
				result = "FAIL"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d/%d\t%d\t%d\t%s\t%d\t%s\n",
				r.Scenario, v.Variant, verdictCell(string(v.Lock), v.Expect["lock"]), verdictCell(string(v.Resource), v.Expect["resource"]),
				c.Acquire.OK, c.Acquire.Fail, c.Acquire.Unknown, v.Resolved, c.Stale, v.Check.Overlap.Max.Round(time.Millisecond), len(v.Faults), result)
		}
	}
	tw.Flush()
	for _, r := range reports {
		for _, v := range r.Variants {
			for _, f := range v.Failures {
				fmt.Fprintf(m.Stdout, "  %s/%s: %s\n", r.Scenario, v.Variant, f)
			}
			for _, e := range v.Check.Explanations {
				fmt.Fprintf(m.Stdout, "  %s/%s:", r.Scenario, v.Variant)
				printExplanation(m.Stdout, e)
			}
			if v.Dir != "" {
				fmt.Fprintf(m.Stdout, "  %s/%s: %s\n", r.Scenario, v.Variant, v.Dir)
			}
		}
	}
}

func verdictCell(got, want string) string {
	if want == "" {
		return got
	}
	return fmt.Sprintf("%s (want %s)", got, want)
}
