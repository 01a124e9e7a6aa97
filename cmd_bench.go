package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/locksim/locksim/bench"
)

func (m *Main) bench(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	var (
		duration = fs.Duration("duration", 0, "length of each measured point (default 2s; --quick 200ms)")
		conc     = fs.String("concurrency", "", "comma-separated client counts (default 1,16,64,256; --quick 1,8)")
		jsonOut  = fs.String("json", "", "also write the rows as a JSON array to this file")
		only     = fs.String("only", "", "comma-separated suites to run: "+strings.Join(bench.Suites, ","))
		fsync    = fs.Bool("fsync", false, "make etcd fsync its WAL (off by default, like the sandbox)")
		quick    = fs.Bool("quick", false, "a smoke run of every suite in seconds (not a measurement)")
		haproxy  = fs.String("haproxy", "haproxy", "haproxy binary for the haproxy and haproxy-tcp suites (skipped when missing)")
		lbProc   = fs.Bool("balancer-process", false, "run our balancer rows (balancer, balancer-tcp) as child processes (locksim serve balancer), as haproxy runs, instead of in the bench's process")
	)
	if err := fs.Parse(args); err != nil {
		return exitBadInput
	}
	if fs.NArg() != 0 {
		return m.errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	cfg := bench.Config{Duration: *duration, Fsync: *fsync, Quick: *quick, HAProxy: *haproxy,
		Only: splitList(*only), Progress: m.Stderr}
	if *duration < 0 {
		return m.errorf("bench: --duration must not be negative")
	}
	if *lbProc {
		exe, err := os.Executable()
		if err != nil {
			return m.errorf("bench: --balancer-process: %v", err)
		}
		cfg.BalancerExe = exe
	}
	for _, s := range splitList(*conc) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return m.errorf("bench: --concurrency: %q is not a positive integer", s)
		}
		cfg.Concurrency = append(cfg.Concurrency, n)
	}
	for _, s := range cfg.Only {
		if !contains(bench.Suites, s) {
			return m.errorf("bench: --only: unknown suite %q (want %s)", s, strings.Join(bench.Suites, ", "))
		}
	}
	start := time.Now()
	rep, err := bench.Run(ctx, cfg)
	if rep != nil {
		printBench(m, rep)
	}
	if err != nil {
		fmt.Fprintf(m.Stderr, "locksim: bench: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(m.Stdout, "total %s\n", time.Since(start).Round(time.Second))
	if *jsonOut != "" {
		b, err := json.MarshalIndent(rep.Rows, "", "  ")
		if err == nil {
			err = os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintf(m.Stderr, "locksim: bench: %v\n", err)
			return exitFailed
		}
	}
	return exitOK
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// printCPU prints where the CPU goes: each component's CPU time per cycle.
func printCPU(m *Main, rep *bench.Report) {
	var rows []bench.Row
	for _, r := range rep.Rows {
		if len(r.CPUUsPerCycle) > 0 {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(m.Stdout, "\nCPU time per cycle, µs, by component (one process on the shared cores; haproxy is its own):")
	tw := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "name\tclients\tkeys\t")
	for _, c := range bench.CPUComponents {
		fmt.Fprintf(tw, "%s\t", c)
	}
	fmt.Fprintln(tw, "total\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t", r.Name, r.Concurrency, r.Keys)
		total := 0.0
		for _, c := range bench.CPUComponents {
			total += r.CPUUsPerCycle[c]
			fmt.Fprintf(tw, "%.0f\t", r.CPUUsPerCycle[c])
		}
		fmt.Fprintf(tw, "%.0f\t\n", total)
	}
	_ = tw.Flush()
}

func printBench(m *Main, rep *bench.Report) {
	tw := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "name\tclients\tkeys\tcycles/s\tp50 ms\tp95 ms\tp99 ms\twrites/cycle\tgrant txns/cycle\twake-ups/cycle\tallocs/cycle\terrors\t")
	for _, r := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t%d\t\n", r.Name, r.Concurrency, r.Keys,
			r.CyclesPerSec, r.P50Ms, r.P95Ms, r.P99Ms, r.WritesPerCycle, r.GrantTxnsPerCycle, r.WakeupsPerCycle, r.AllocsPerCycle, r.Errors)
	}
	_ = tw.Flush()
	printCPU(m, rep)
	for _, r := range rep.Rows {
		switch {
		case r.Held > 0:
			fmt.Fprintf(m.Stdout, "scale: %d held: acquire p50 %.2f ms; %.0f B of etcd db (per member) and %.0f B of process RSS (3 members) per held lock\n",
				r.Held, r.P50Ms, r.DBBytesPerLock, r.RSSBytesPerLock)
		case r.Note != "":
			fmt.Fprintf(m.Stdout, "%s: %s\n", r.Name, r.Note)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(m.Stdout, "note: %s\n", n)
	}
}
