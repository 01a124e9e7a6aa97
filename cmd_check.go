package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
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
	res := history.Check(ops, history.Options{Timeout: *timeout, VisualizePath: *html, Explain: true})
	fmt.Fprintf(m.Stdout, "%s: %d operations (%d lock, %d resource) checked in %s\n",
		path, len(ops), res.LockOps, res.ResourceOps, res.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(m.Stdout, "  lock      %s\n  resource  %s\n", res.Lock, res.Resource)
	for _, d := range res.Details {
		fmt.Fprintf(m.Stdout, "  - %s\n", d)
	}
	if res.VisualizationPath != "" {
		fmt.Fprintf(m.Stdout, "  view: %s\n", res.VisualizationPath)
	}
	for _, e := range res.Explanations {
		printExplanation(m.Stdout, e)
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

// printExplanation prints why a partition is violated: its kind, the words
// (wrapped), the few operations that show it and the view of just them.
func printExplanation(w io.Writer, e history.Explanation) {
	fmt.Fprintf(w, "\n  why %s %s: %s, %d operations\n", e.Model, e.Resource, e.Kind, len(e.Operations))
	for _, line := range wrap(e.Text, 96) {
		fmt.Fprintf(w, "    %s\n", line)
	}
	for _, op := range e.Operations {
		fmt.Fprintf(w, "      %s\n", op)
	}
	for _, op := range e.Context {
		fmt.Fprintf(w, "      (context) %s\n", op)
	}
	if e.VisualizationPath != "" {
		fmt.Fprintf(w, "    view: %s\n", e.VisualizationPath)
	}
}

// wrap breaks text into lines of at most width characters at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
