package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/locksim/locksim/history"
)

func (m *Main) check(_ context.Context, args []string) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	timeout := fs.Duration("timeout", 30*time.Second, "give up (verdict unknown) after this long per check")
	html := fs.String("html", "", "also write porcupine's visualization of the history to this file")
	if err := fs.Parse(args); err != nil {
		return exitBadInput
	}
	if fs.NArg() != 1 {
		return m.errorf("check: want exactly one history file, got %d", fs.NArg())
	}
	path := fs.Arg(0)
	f, err := os.Open(path)
	if err != nil {
		return m.errorf("check: %v", err)
	}
	ops, err := history.ReadJSONL(f)
	f.Close()
	if err != nil {
		return m.errorf("check: %s:%v", path, err)
	}
	res := history.Check(ops, history.Options{Timeout: *timeout, VisualizePath: *html})
	fmt.Fprintf(m.Stdout, "%s: %d operations (%d lock, %d resource) checked in %s\n",
		path, len(ops), res.LockOps, res.ResourceOps, res.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(m.Stdout, "  lock      %s\n  resource  %s\n", res.Lock, res.Resource)
	for _, d := range res.Details {
		fmt.Fprintf(m.Stdout, "  - %s\n", d)
	}
	if res.VisualizationPath != "" {
		fmt.Fprintf(m.Stdout, "  view: %s\n", res.VisualizationPath)
	}
	switch {
	case res.Lock == history.Violated || res.Resource == history.Violated:
		return exitFailed
	case res.Lock == history.Unknown || res.Resource == history.Unknown:
		fmt.Fprintln(m.Stdout, "  the checker timed out: the history is neither proven linearizable nor violated")
		return exitFailed
	}
	return exitOK
}
