package external

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors of a Process: every error it returns is an *Error of one of these
// kinds, whose message is one line naming the server and the problem.
var (
	// ErrCommand reports a command line that cannot be run (empty, an
	// unknown placeholder, no {listen}).
	ErrCommand = errors.New("external: bad command")
	// ErrStart reports a command that could not be started at all.
	ErrStart = errors.New("external: does not start")
	// ErrExited reports a process that ended before it was ready.
	ErrExited = errors.New("external: exited")
	// ErrNotReady reports a process that did not accept connections, or
	// answer GET /health with 200, in time.
	ErrNotReady = errors.New("external: not ready")
)

// Error is one problem of a Process: Msg says it in one line, Kind is
// one of the sentinel errors above (errors.Is works).
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Placeholders of a command line.
const (
	Listen = "{listen}" // host:port to serve on
	Name   = "{name}"   // the lock server's name, lockserver-N
	Etcd   = "{etcd}"   // comma-separated etcd client URLs
)

var placeholder = regexp.MustCompile(`\{[A-Za-z_]*\}`)

// CheckCommand reports whether cmd can be run: not empty, no placeholder
// but {listen}, {name} and {etcd}, and {listen} present (a server must be
// told where to serve).
func CheckCommand(cmd string) error {
	if strings.TrimSpace(cmd) == "" {
		return errorf(ErrCommand, "the lock server command line is empty")
	}
	for _, p := range placeholder.FindAllString(cmd, -1) {
		if p != Listen && p != Name && p != Etcd {
			return errorf(ErrCommand, "unknown placeholder %s in %q (want {listen}, {name} and {etcd})", p, cmd)
		}
	}
	if !strings.Contains(cmd, Listen) {
		return errorf(ErrCommand, "%q has no {listen}: the server must serve on the address locksim gives it", cmd)
	}
	return nil
}

// Expand replaces the placeholders of cmd.
func Expand(cmd, listen, name string, etcd []string) string {
	return strings.NewReplacer(Listen, listen, Name, name, Etcd, strings.Join(etcd, ",")).Replace(cmd)
}

// Config describes one lock server process.
type Config struct {
	// Name is the lock server's name: {name}, the log files' names and
	// the start of every error. Required.
	Name string
	// Command is the command line, run by /bin/sh. Required (see CheckCommand).
	Command string
	// Listen is the host:port the server must serve on: {listen}. Required.
	Listen string
	// Etcd are the etcd client URLs the server must use: {etcd}.
	Etcd []string
	// LogDir receives NAME.stdout and NAME.stderr. Required.
	LogDir string
	// Env is added to the process's environment (KEY=VALUE).
	Env []string
	// OnExit is called, from the goroutine that reaps the process, when it
	// ended without Close: it crashed or exited on its own. how says how
	// ("exited with status 1", "was killed by signal segmentation fault").
	OnExit func(how string)
}

// Process is one run of a lock server's command.
type Process struct {
	cfg    Config
	cmd    *exec.Cmd
	stdout *os.File
	stderr *os.File
	done   chan struct{} // closed once reaped
	exit   error         // how it ended; valid after done

	mu      sync.Mutex
	started bool
	closing bool // Close was called: the exit is expected
	pid     int  // the process group's id once started
}

// New checks cfg and returns a Process that is not started.
func New(cfg Config) (*Process, error) {
	if err := CheckCommand(cfg.Command); err != nil {
		return nil, errorf(ErrCommand, "%s: %s", cfg.Name, err)
	}
	if cfg.Name == "" || cfg.Listen == "" || cfg.LogDir == "" {
		return nil, errorf(ErrCommand, "external: Config.Name, Listen and LogDir are required")
	}
	return &Process{cfg: cfg, done: make(chan struct{})}, nil
}

// LogPaths returns the files that receive the process's standard output
// and standard error.
func (p *Process) LogPaths() (stdout, stderr string) {
	base := filepath.Join(p.cfg.LogDir, p.cfg.Name)
	return base + ".stdout", base + ".stderr"
}

// Start runs the command in a process group of its own and returns once the
// server accepts TCP connections at Listen (or fails: it exited, or ctx
// ended first). It does not wait for /health (see WaitHealthy).
func (p *Process) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.started || p.closing {
		p.mu.Unlock()
		return errorf(ErrStart, "%s: Start called twice or after Close", p.cfg.Name)
	}
	p.started = true
	p.mu.Unlock()
	if err := p.spawn(); err != nil {
		close(p.done)
		return err
	}
	go p.reap()
	err := p.poll(ctx, "accept connections at "+p.cfg.Listen, func(ctx context.Context) bool {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", p.cfg.Listen)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
	if err != nil {
		_ = p.Close()
	}
	return err
}

// spawn opens the log files and starts the command.
func (p *Process) spawn() error {
	if err := os.MkdirAll(p.cfg.LogDir, 0o755); err != nil {
		return errorf(ErrStart, "%s: log dir: %v", p.cfg.Name, err)
	}
	outPath, errPath := p.LogPaths()
	line := Expand(p.cfg.Command, p.cfg.Listen, p.cfg.Name, p.cfg.Etcd)
	var err error
	open := func(path string) *os.File {
		if err != nil {
			return nil
		}
		var f *os.File
		f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err == nil {
			fmt.Fprintf(f, "=== locksim: %s starts %s at %s\n", p.cfg.Name, line, time.Now().Format(time.RFC3339Nano))
		}
		return f
	}
	p.stdout, p.stderr = open(outPath), open(errPath)
	if err != nil {
		p.closeLogs()
		return errorf(ErrStart, "%s: log file: %v", p.cfg.Name, err)
	}
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.Env = append(os.Environ(), p.cfg.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.closeLogs()
		return errorf(ErrStart, "%s: %q does not start: %v", p.cfg.Name, line, err)
	}
	p.mu.Lock()
	p.cmd, p.pid = cmd, cmd.Process.Pid
	p.mu.Unlock()
	return nil
}

func (p *Process) closeLogs() {
	for _, f := range []*os.File{p.stdout, p.stderr} {
		if f != nil {
			_ = f.Close()
		}
	}
}

// reap waits for the process, records how it ended and tells OnExit when
// nobody asked it to end.
func (p *Process) reap() {
	err := p.cmd.Wait()
	// Anything the shell left behind in the group goes with it.
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	p.closeLogs()
	p.exit = err
	p.mu.Lock()
	expected := p.closing
	p.mu.Unlock()
	close(p.done)
	if !expected && p.cfg.OnExit != nil {
		p.cfg.OnExit(describeExit(err))
	}
}

// WaitHealthy polls GET /health until it answers 200, the process exits or
// ctx ends.
func (p *Process) WaitHealthy(ctx context.Context) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + p.cfg.Listen + "/health"
	return p.poll(ctx, "answer GET /health with 200", func(ctx context.Context) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		resp, err := hc.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// poll calls ok every 50 ms until it holds; it fails when the process
// exits or ctx ends first.
func (p *Process) poll(ctx context.Context, what string, ok func(context.Context) bool) error {
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return errorf(ErrExited, "%s %s before it would %s%s", p.cfg.Name, describeExit(p.exit), what, p.lastWords())
		default:
		}
		if ok(ctx) {
			return nil
		}
		select {
		case <-p.done:
		case <-tick.C:
		case <-ctx.Done():
			return errorf(ErrNotReady, "%s did not %s within %s%s", p.cfg.Name, what,
				time.Since(start).Round(100*time.Millisecond), p.lastWords())
		}
	}
}

// describeExit says how a process ended: "exited with status 1", "was
// killed by signal killed".
func describeExit(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "was killed by signal " + ws.Signal().String()
		}
		return fmt.Sprintf("exited with status %d", ee.ExitCode())
	}
	if err == nil {
		return "exited with status 0"
	}
	return "exited (" + err.Error() + ")"
}

// DescribeExit says how the process ended, for an event on the timeline.
func (p *Process) DescribeExit() string {
	select {
	case <-p.done:
		return describeExit(p.exit)
	default:
		return "is running"
	}
}

// lastWords quotes the last line the process wrote on standard error, and
// says where its logs are.
func (p *Process) lastWords() string {
	_, errPath := p.LogPaths()
	data, err := os.ReadFile(errPath)
	if err != nil {
		return ""
	}
	var last string
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		if s := strings.TrimSpace(string(l)); s != "" && !strings.HasPrefix(s, "=== locksim:") {
			last = s
		}
	}
	if len(last) > 200 {
		last = last[:200] + "..."
	}
	if last == "" {
		return " (standard error: " + errPath + ")"
	}
	return fmt.Sprintf(": %q (standard error: %s)", last, errPath)
}

// signal sends sig to the process group; false when it is not running.
func (p *Process) signal(sig syscall.Signal) bool {
	select {
	case <-p.done:
		return false
	default:
	}
	pid := p.Pid()
	if pid == 0 {
		return false
	}
	return syscall.Kill(-pid, sig) == nil
}

// Pause stops the process group (SIGSTOP): a real process pause.
func (p *Process) Pause() { p.signal(syscall.SIGSTOP) }

// Resume continues it (SIGCONT).
func (p *Process) Resume() { p.signal(syscall.SIGCONT) }

// Running reports whether the process has not ended.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return p.Pid() != 0
	}
}

// Done is closed once the process has ended and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Pid is the process id of the shell that runs the command (the process
// group's id); 0 before Start.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Close kills the process group (SIGKILL, like a crash; a paused process
// dies too) and returns once it is reaped. It is idempotent.
func (p *Process) Close() error {
	p.mu.Lock()
	p.closing = true
	started := p.started
	p.mu.Unlock()
	if !started {
		return nil
	}
	pid := p.Pid()
	p.signal(syscall.SIGKILL)
	<-p.done
	waitGroupGone(pid, 2*time.Second)
	return nil
}

// waitGroupGone waits (at most bound) until every process of the group has
// died: the shell is reaped by reap; the program it started, an orphan now,
// is a zombie until init reaps it, but a zombie holds no port and runs no
// code.
func waitGroupGone(pgid int, bound time.Duration) {
	if pgid == 0 {
		return
	}
	deadline := time.Now().Add(bound)
	for groupRunning(pgid) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polls the kernel; nothing to wait on
	}
}

// groupRunning reports whether a process of group pgid has not died. It
// reads /proc (Linux); elsewhere it asks kill(2), which counts zombies too.
func groupRunning(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		state, group, ok := procStat(e.Name())
		if ok && group == pgid && state != "Z" && state != "X" {
			return true
		}
	}
	return false
}

// procStat reads the state and the process group of /proc/PID/stat.
func procStat(pid string) (state string, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:]) // state, ppid, pgrp, ...
	if len(f) < 3 {
		return "", 0, false
	}
	pgrp, err = strconv.Atoi(f[2])
	return f[0], pgrp, err == nil
}
