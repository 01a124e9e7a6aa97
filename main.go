// Command locksim runs a real distributed locking service inside one
// process — three embedded etcd members, stateless lock servers and a load
// balancer — breaks it on purpose, and checks what survives.
//
//	locksim up                      the sandbox with a default workload
//	locksim run FILE...             scenario files, headless, with a verdict
//	locksim grade [FILE...]         grade a lock server: API battery + fault catalogue
//	locksim check HISTORY.jsonl     check a recorded history offline
//	locksim serve lockserver|balancer  one component as a real process
//	locksim view DIR                open a finished run in the visualizer
//
// Run `locksim help` for every command and flag.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/locksim/locksim/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr}
	os.Exit(m.Run(ctx, os.Args[1:]))
}

// Exit codes shared by every command.
const (
	exitOK       = 0
	exitFailed   = 1 // a check found a violation, an expectation failed
	exitBadInput = 2 // bad flags, files or histories: nothing was started
)

// Main is the locksim command as a value, so tests can run it in-process.
type Main struct {
	Stdout, Stderr io.Writer
	// Ready, when set, is called by `up` once the sandbox serves (tests use it).
	Ready func(sim.Addresses)
	// ReadyUI, when set, is called by `up` with the web UI's URL once it serves.
	ReadyUI func(url string)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

const usage = `locksim — a distributed locking service in one process, broken on purpose.

Usage:
  locksim up [flags]                  boot the sandbox with a default workload and the web UI
                                      at --web (default http://127.0.0.1:8080/; Ctrl-C stops it)
  locksim run FILE... [flags]         run scenario files headless; exit 0 when every expectation holds
                                      (--ui serves the page during the run)
  locksim grade [FILE...] [flags]      grade a lock server (--lockserver-cmd "CMD {listen} {etcd}", default
                                      locksim's own): the API battery, then the safe fault catalogue;
                                      exit 0 nothing violated, 1 something was, 2 bad input
  locksim check HISTORY.jsonl         check a recorded history; exit 0 linearizable, 1 violated
  locksim serve lockserver --etcd URLS --listen ADDR     one lock server as its own process, against an external etcd
  locksim serve balancer --backends URLS --listen ADDR   the load balancer as its own process
  locksim view DIR [--web ADDR]       open a finished run (a folder with frames.jsonl) in the page
  locksim bench [flags]               benchmarks: raw etcd vs lock server vs balancer vs haproxy vs etcd Mutex
  locksim help                        this text

Run "locksim COMMAND -h" for a command's flags.
Exit codes: 0 ok, 1 a check or expectation failed, 2 bad input.
`

// Run executes one command line and returns the process exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return exitBadInput
	}
	switch args[0] {
	case "up":
		return m.up(ctx, args[1:])
	case "run":
		return m.run(ctx, args[1:])
	case "check":
		return m.check(ctx, args[1:])
	case "serve":
		return m.serve(ctx, args[1:])
	case "view":
		return m.view(ctx, args[1:])
	case "bench":
		return m.bench(ctx, args[1:])
	case "grade":
		return m.grade(ctx, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(m.Stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(m.Stderr, "locksim: unknown command %q (want up, run, grade, check, serve, view, bench or help)\n", args[0])
		return exitBadInput
	}
}

func (m *Main) errorf(format string, args ...any) int {
	fmt.Fprintf(m.Stderr, "locksim: "+format+"\n", args...)
	return exitBadInput
}

// parseInterleaved parses args with fs, letting flags come before, between
// or after the positional arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
