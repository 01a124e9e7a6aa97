package external

import (
	"context"

	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// The test binary doubles as the program under test: with HELPER set it
// runs helperMain instead of the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("HELPER"); mode != "" {
		helperMain(mode)
		return
	}
	goleak.VerifyTestMain(m)
}

// helperMain is a tiny server. Modes: "serve" answers /health 200;
// "sick" answers 503; "exit3" writes to stderr and exits 3; "deaf" never
// listens; "quit" serves, and exits 0 on GET /quit. It writes its pid to
// $PIDFILE and a line to stdout and stderr.
func helperMain(mode string) {
	listen := os.Args[len(os.Args)-1]
	if f := os.Getenv("PIDFILE"); f != "" {
		_ = os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())), 0o644)
	}
	fmt.Println("helper on stdout, mode", mode)
	fmt.Fprintln(os.Stderr, "helper on stderr, mode", mode)
	switch mode {
	case "exit3":
		fmt.Fprintln(os.Stderr, "fatal: cannot reach etcd")
		os.Exit(3)
	case "deaf":
		time.Sleep(time.Hour)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		os.Exit(4)
	}
	_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/quit":
			os.Exit(0)
		case mode == "sick":
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte(`{"status":"ok"}`))
		}
	}))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// helper returns a Process running the test binary in mode, and the file
// its pid will be written to.
func helper(t *testing.T, mode string, onExit func(string)) (*Process, string) {
	t.Helper()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	p, err := New(Config{
		Name:    "lockserver-1",
		Command: fmt.Sprintf("%s -test.run=^$ {listen}", os.Args[0]),
		Listen:  freeAddr(t),
		LogDir:  dir,
		Env:     []string{"HELPER=" + mode, "PIDFILE=" + pidFile},
		OnExit:  onExit,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p, pidFile
}

// alive reports whether pid is a process that has not died (a zombie
// waiting for init to reap it has).
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil && procState(pid) != "Z" }

func readPid(t *testing.T, file string) int {
	t.Helper()
	var pid int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(file)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(string(b))
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	return pid
}

// procState reads the state letter of /proc/PID/stat ("T" = stopped).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// Start runs the command with its placeholders filled in, waits until it
// serves, logs its output to NAME.stdout and NAME.stderr, and Close kills
// the whole process group: neither the shell nor the program outlives it.
func TestStartServesAndCloseLeavesNoProcess(t *testing.T) {
	p, pidFile := helper(t, "serve", nil)
	require.NoError(t, p.Start(t.Context()))
	require.NoError(t, p.WaitHealthy(t.Context()))
	program, shell := readPid(t, pidFile), p.Pid()
	require.True(t, alive(program) && alive(shell))

	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "Close is idempotent")
	assert.False(t, alive(program), "the program survived Close")
	assert.False(t, alive(shell), "the shell survived Close")
	assert.False(t, p.Running())

	stdout, stderr := p.LogPaths()
	out, err := os.ReadFile(stdout)
	require.NoError(t, err)
	assert.Contains(t, string(out), "=== locksim: lockserver-1 starts ")
	assert.Contains(t, string(out), "helper on stdout, mode serve")
	errs, err := os.ReadFile(stderr)
	require.NoError(t, err)
	assert.Contains(t, string(errs), "helper on stderr, mode serve")
}

// Pause is a real SIGSTOP: the kernel shows the program stopped and it
// answers nothing until Resume.
func TestPauseStopsTheProgram(t *testing.T) {
	p, pidFile := helper(t, "serve", nil)
	require.NoError(t, p.Start(t.Context()))
	program := readPid(t, pidFile)

	p.Pause()
	require.Eventually(t, func() bool { return procState(program) == "T" }, 10*time.Second, 10*time.Millisecond,
		"state %q", procState(program))
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	err := p.WaitHealthy(ctx)
	cancel()
	require.ErrorIs(t, err, ErrNotReady, "a stopped program answers nothing")

	p.Resume()
	require.NoError(t, p.WaitHealthy(t.Context()))
	assert.NotEqual(t, "T", procState(program))
}

// A paused program is still killed by Close.
func TestCloseKillsAPausedProgram(t *testing.T) {
	p, pidFile := helper(t, "serve", nil)
	require.NoError(t, p.Start(t.Context()))
	program := readPid(t, pidFile)
	p.Pause()
	require.Eventually(t, func() bool { return procState(program) == "T" }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, p.Close())
	assert.False(t, alive(program))
}

// A program that ends on its own is reported through OnExit, with how it
// ended; one that Close ended is not.
func TestOnExitReportsAnExitOnItsOwn(t *testing.T) {
	exits := make(chan string, 1)
	p, _ := helper(t, "quit", func(how string) { exits <- how })
	require.NoError(t, p.Start(t.Context()))
	_, _ = http.Get("http://" + p.cfg.Listen + "/quit")
	select {
	case how := <-exits:
		assert.Equal(t, "exited with status 0", how)
	case <-time.After(10 * time.Second):
		t.Fatal("OnExit was not called")
	}
	assert.False(t, p.Running())

	var called atomic.Bool
	q, _ := helper(t, "serve", func(string) { called.Store(true) })
	require.NoError(t, q.Start(t.Context()))
	require.NoError(t, q.Close())
	assert.False(t, called.Load(), "OnExit after Close")
}

// Bad commands fail with one line that names the server and the problem,
// within the bound, and leave nothing running.
func TestBadCommandsFailWithOneLine(t *testing.T) {
	for _, tc := range []struct {
		name, command string
		want          error
		says          []string
	}{
		{"empty", " ", ErrCommand, []string{"lockserver-1", "empty"}},
		{"unknown placeholder", "server --port {port} {listen}", ErrCommand, []string{"unknown placeholder {port}"}},
		{"no listen", "server --etcd {etcd}", ErrCommand, []string{"has no {listen}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Name: "lockserver-1", Command: tc.command, Listen: "127.0.0.1:1", LogDir: t.TempDir()})
			require.ErrorIs(t, err, tc.want)
			for _, s := range tc.says {
				assert.Contains(t, err.Error(), s)
			}
		})
	}

	t.Run("not found", func(t *testing.T) {
		p, err := New(Config{Name: "lockserver-2", Command: "no-such-lock-server-xyz --listen {listen}", Listen: freeAddr(t), LogDir: t.TempDir()})
		require.NoError(t, err)
		err = p.Start(t.Context())
		require.ErrorIs(t, err, ErrExited)
		assert.Contains(t, err.Error(), "lockserver-2 exited with status 127")
		assert.Contains(t, err.Error(), "not found")
		assert.NotContains(t, err.Error(), "\n")
	})
	t.Run("exits", func(t *testing.T) {
		p, _ := helper(t, "exit3", nil)
		err := p.Start(t.Context())
		require.ErrorIs(t, err, ErrExited)
		assert.Contains(t, err.Error(), "exited with status 3")
		assert.Contains(t, err.Error(), "fatal: cannot reach etcd", "quotes its last words")
	})
	for _, mode := range []string{"deaf", "sick"} {
		t.Run(mode, func(t *testing.T) {
			p, pidFile := helper(t, mode, nil)
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			err := p.Start(ctx)
			if err == nil {
				err = p.WaitHealthy(ctx)
			}
			require.ErrorIs(t, err, ErrNotReady)
			assert.Contains(t, err.Error(), "lockserver-1 did not")
			require.NoError(t, p.Close())
			assert.False(t, alive(readPid(t, pidFile)))
		})
	}
}

func TestExpand(t *testing.T) {
	got := Expand("srv --listen {listen} --name {name} --etcd {etcd} {listen}", "127.0.0.1:9", "lockserver-3",
		[]string{"http://127.0.0.1:1", "http://127.0.0.1:2"})
	assert.Equal(t, "srv --listen 127.0.0.1:9 --name lockserver-3 --etcd http://127.0.0.1:1,http://127.0.0.1:2 127.0.0.1:9", got)
}
