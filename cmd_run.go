package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/locksim/locksim/scenarios"
	"github.com/locksim/locksim/sim"
)

func (m *Main) run(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	var (
		seed     = fs.Int64("seed", 0, "override every scenario's seed (0 = the file's own)")
		out      = fs.String("out", "out", "folder for report.json and, per variant, history.jsonl and history.html")
		asJSON   = fs.Bool("json", false, "print the reports as JSON instead of a table")
		timeout  = fs.Duration("check-timeout", 30*time.Second, "give up a porcupine check after this long (verdict unknown)")
		variants = fs.String("variant", "", "run only these variants (comma-separated)")
	)
	// Flags may come after the files: parse them interleaved.
	var files []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return exitBadInput
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(files) == 0 {
		return m.errorf("run: want at least one scenario file")
	}
	// Parse every file before anything starts.
	var scs []*scenarios.Scenario
	for _, f := range files {
		sc, err := scenarios.ParseFile(f)
		if err != nil {
			fmt.Fprintf(m.Stderr, "%v\n", err)
			return exitBadInput
		}
		for _, v := range splitList(*variants) {
			if _, err := sc.Resolve(v); err != nil {
				return m.errorf("run: %s: %v", f, err)
			}
		}
		scs = append(scs, sc)
	}
	var reports []*sim.Report
	pass := true
	for _, sc := range scs {
		rep, err := sim.RunScenario(ctx, sc, sim.RunOptions{
			Seed:         *seed,
			OutDir:       *out,
			Progress:     m.Stderr,
			CheckTimeout: *timeout,
			Variants:     splitList(*variants),
		})
		if err != nil {
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
	if !pass {
		return exitFailed
	}
	return exitOK
}

func (m *Main) printVerdicts(reports []*sim.Report) {
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
