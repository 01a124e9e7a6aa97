package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/locksim/locksim/scenarios"
	"github.com/locksim/locksim/sim"
	"github.com/locksim/locksim/web"
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
		ui       = fs.Bool("ui", false, "serve the visualizer during the run (at --web) and keep serving until Ctrl-C")
		webAddr  = fs.String("web", "127.0.0.1:8080", "with --ui: serve the visualizer here (port 0 = any free port)")
	)
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return exitBadInput
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
	var relay *sim.WebRelay
	if *ui {
		relay = sim.NewWebRelay()
		defer relay.Close()
		srv, err := web.New(web.Config{Listen: *webAddr, Scenarios: sim.WebScenarios, HistoryHTML: relay.HistoryHTML}, relay, relay)
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
	var reports []*sim.Report
	pass := true
	for _, sc := range scs {
		rec := &frameRecorder{out: *out, sc: sc, variants: splitList(*variants), relay: relay}
		rep, err := sim.RunScenario(ctx, sc, sim.RunOptions{
			Seed:         *seed,
			OutDir:       *out,
			Progress:     m.Stderr,
			CheckTimeout: *timeout,
			Variants:     splitList(*variants),
			Observe:      rec.observe,
		})
		if ferr := rec.finish(rep); ferr != nil {
			fmt.Fprintf(m.Stderr, "locksim: run: frames: %v\n", ferr)
		}
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
	if *ui && ctx.Err() == nil {
		fmt.Fprintln(m.Stderr, "run finished; the web UI keeps serving until Ctrl-C")
		<-ctx.Done()
	}
	if !pass {
		return exitFailed
	}
	return exitOK
}

// frameRecorder watches each variant's sandbox of one scenario: it writes
// the frames to the variant's frames.jsonl (for `locksim view`) and, with
// --ui, relays them to the page.
type frameRecorder struct {
	out      string
	sc       *scenarios.Scenario
	variants []string
	relay    *sim.WebRelay

	n    int
	cur  *variantFrames
	done []*variantFrames
	err  error
}

type variantFrames struct {
	variant string
	view    *sim.Web
	file    *os.File
	stop    func() error
	last    web.Frame
}

func (r *frameRecorder) observe(sb *sim.Sandbox) {
	r.closeCurrent()
	var names []string
	for _, v := range r.sc.VariantNames() {
		if len(r.variants) == 0 || slices.Contains(r.variants, v) {
			names = append(names, v)
		}
	}
	if r.n >= len(names) {
		return
	}
	variant := names[r.n]
	r.n++
	check := time.Duration(-1) // the headless run checks at the end; the page re-checks live
	if r.relay != nil {
		check = 0
	}
	view := sim.NewWeb(sb, sim.WebConfig{CheckEvery: check})
	if err := view.Start(context.Background()); err != nil {
		r.err = errors.Join(r.err, err)
		return
	}
	vf := &variantFrames{variant: variant, view: view}
	dir := filepath.Join(r.out, r.sc.Name, variant) // next to history.jsonl
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.err = errors.Join(r.err, err)
	} else if f, err := os.Create(filepath.Join(dir, "frames.jsonl")); err != nil {
		r.err = errors.Join(r.err, err)
	} else {
		vf.file = f
		vf.stop = sim.RecordFrames(view, f)
	}
	if r.relay != nil {
		r.relay.Attach(view)
	}
	r.cur = vf
}

func (r *frameRecorder) closeCurrent() {
	vf := r.cur
	if vf == nil {
		return
	}
	r.cur = nil
	if vf.stop != nil {
		r.err = errors.Join(r.err, vf.stop())
	}
	vf.last = vf.view.Frame()
	r.err = errors.Join(r.err, vf.view.Close())
	r.done = append(r.done, vf)
}

// finish stops recording and appends to each variant's frames a last frame
// with the verdict of the final check. With --ui the page keeps the last
// variant's frames and links its history.html.
func (r *frameRecorder) finish(rep *sim.Report) error {
	r.closeCurrent()
	if r.relay != nil && rep != nil && len(rep.Variants) > 0 {
		r.relay.SetHistoryFile(rep.Variants[len(rep.Variants)-1].HTMLPath)
	}
	for _, vf := range r.done {
		if vf.file == nil {
			continue
		}
		if rep != nil {
			for _, v := range rep.Variants {
				if v.Variant == vf.variant {
					f := vf.last
					f.Seq++
					f.Ops, f.Faults = nil, nil
					f.Verdict.Lock, f.Verdict.Resource = string(v.Lock), string(v.Resource)
					f.Verdict.CheckedOps = v.Check.LockOps + v.Check.ResourceOps
					f.Verdict.HistoryURL = "/history.html"
					r.err = errors.Join(r.err, web.AppendFrameJSONL(vf.file, f))
				}
			}
		}
		r.err = errors.Join(r.err, vf.file.Close())
	}
	return r.err
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
