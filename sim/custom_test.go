package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
)

// procState reads the state letter of /proc/PID/stat ("T": stopped, "Z": dead).
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

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil && procState(pid) != "Z" }

// procOf returns the process of a lock server of LockServerCmd (nil while down).
func procOf(sb *Sandbox, name string) procServer {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	p, _ := sb.slot(name).run.(procServer)
	return p
}

// groupPids lists the live processes of a process group.
func groupPids(pgid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		var pid, ppid, pgrp int
		var state string
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || i < 0 {
			continue
		}
		if _, err := fmt.Sscanf(s[i+1:], " %s %d %d", &state, &ppid, &pgrp); err == nil && pgrp == pgid && state != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

// acquireVia tries one acquire directly on a lock server.
func acquireVia(ctx context.Context, sb *Sandbox, server, client string) error {
	c := &lockserver.Client{BaseURL: sb.Addresses().LockServers[server], ClientID: client}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	g, err := c.Acquire(ctx, "direct:"+client, 5*time.Second, 0)
	if err == nil {
		_ = c.Release(ctx, "direct:"+client, g.LockToken)
	}
	return err
}

// Lock servers run as processes of a command line are put under the same
// faults as locksim's own, for real: a pause is SIGSTOP of the process (the
// kernel shows it stopped) and holds its requests; a partition from the
// etcd members cuts its traffic through its own proxies; a crash is SIGKILL
// and a restart runs the command again; a process that exits on its own is
// an event in the fault log. The workload runs through all of it and its
// history checks linearizable; Close leaves no process behind.
func TestLockServerProcessesTakeRealFaults(t *testing.T) {
	sb := start(t, Config{LockServerCmd: helperCommand("lockserver"), LogDir: t.TempDir()})
	ctx := t.Context()
	sb.StartWorkload(ctx)
	require.Eventually(t, func() bool { return sb.Status().Cycles >= 10 }, 20*time.Second, 10*time.Millisecond)
	groups := map[string]int{}
	for _, n := range sb.Addresses().LockServerNames() {
		groups[n] = procOf(sb, n).Pid()
		require.NotEmpty(t, groupPids(groups[n]), n)
	}

	// Pause: SIGSTOP of the whole process group, until the resume.
	require.NoError(t, sb.Pause("lockserver-1"))
	for _, pid := range groupPids(groups["lockserver-1"]) {
		require.Eventually(t, func() bool { return procState(pid) == "T" }, 10*time.Second, 10*time.Millisecond)
	}
	held := make(chan error, 1)
	go func() { held <- acquireVia(ctx, sb, "lockserver-1", "paused-1") }()
	select {
	case err := <-held:
		t.Fatalf("a paused process answered: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, sb.Resume("lockserver-1"))
	require.NoError(t, <-held, "the request held by the pause is answered after the resume")

	// A partition between lockserver-2 and every member cuts its real traffic.
	in := sb.Faults()
	id, err := in.Apply(ctx, faults.Step{Fault: faults.FaultPartition, Isolate: "lockserver-2"})
	require.NoError(t, err)
	err = acquireVia(ctx, sb, "lockserver-2", "cut-2")
	require.True(t, errors.Is(err, lockserver.ErrUnavailable) || errors.Is(err, lockserver.ErrOutcomeUnknown),
		"an isolated lock server process reaches no member: %v", err)
	in.Undo(ctx, id)
	require.Eventually(t, func() bool { return acquireVia(ctx, sb, "lockserver-2", "healed-2") == nil }, 20*time.Second, 50*time.Millisecond)

	// Crash is SIGKILL of the group; restart runs the command again.
	require.NoError(t, sb.Crash("lockserver-3"))
	for _, pid := range []int{groups["lockserver-3"]} {
		require.False(t, alive(pid), "a crashed process is gone")
	}
	assert.Empty(t, groupPids(groups["lockserver-3"]))
	require.NoError(t, sb.Restart(ctx, "lockserver-3"))
	assert.NotEqual(t, groups["lockserver-3"], procOf(sb, "lockserver-3").Pid())
	require.Eventually(t, func() bool { return acquireVia(ctx, sb, "lockserver-3", "restarted-3") == nil }, 20*time.Second, 50*time.Millisecond)

	// A process that exits on its own is an event, and the slot is down until restarted.
	_, _ = http.Get(sb.Addresses().LockServers["lockserver-1"] + "/quit")
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(sb.Events(), func(ev faults.Event) bool { return ev.Fault == FaultExit && ev.Target == "lockserver-1" })
	}, 10*time.Second, 10*time.Millisecond)
	i := slices.IndexFunc(sb.Events(), func(ev faults.Event) bool { return ev.Fault == FaultExit })
	assert.Contains(t, sb.Events()[i].Note, "lockserver-1 exited with status 3 on its own")
	assert.False(t, sb.State().LockServers[0].Up)
	require.NoError(t, sb.Restart(ctx, "lockserver-1"))

	// The history of all of it is checked.
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	sb.DrainWorkload(dctx)
	cancel()
	ops, err := sb.History()
	require.NoError(t, err)
	res := history.Check(ops, history.Options{Timeout: 30 * time.Second})
	assert.Equal(t, history.Linearizable, res.Lock, "%+v", res.Counts)
	assert.Equal(t, history.Linearizable, res.Resource)
	assert.Positive(t, res.Counts.Acquire.OK)

	// Close leaves no process behind.
	var pgids []int
	for _, n := range sb.Addresses().LockServerNames() {
		pgids = append(pgids, procOf(sb, n).Pid())
	}
	require.NoError(t, sb.Close())
	for _, g := range pgids {
		assert.Empty(t, groupPids(g), "process group %d outlived Close", g)
	}
	logs, err := os.ReadDir(sb.LogDir())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(logs), 6, "a .stdout and a .stderr per lock server")
}

// A command that does not start, never answers /health, or does not answer
// the API with the documented JSON fails Start with one line that names the
// server and the problem, within the bound, and leaves nothing running.
func TestBadLockServerCommandsFailStart(t *testing.T) {
	for _, tc := range []struct {
		name, command string
		says          []string
	}{
		{"not found", "no-such-lock-server-xyz --listen {listen}", []string{"lockserver-1 exited with status 127", "not found"}},
		{"exits", helperCommand("exit"), []string{"lockserver-1 exited with status 7", "helper: cannot start: no configuration"}},
		{"never listens", "sleep 60 # {listen}", []string{"lockserver-1 did not accept connections at"}},
		{"not the API", helperCommand("garbage"), []string{"lockserver-1", "GET /locks/locksim-probe answered 200 with a body that is not a JSON object"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb, err := New(Config{LockServerCmd: tc.command, LogDir: t.TempDir(), ReadyTimeout: 2 * time.Second})
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			began := time.Now()
			err = sb.Start(ctx)
			require.ErrorIs(t, err, ErrBadLockServer)
			assert.Less(t, time.Since(began), 50*time.Second, "bounded")
			for _, s := range tc.says {
				assert.Contains(t, err.Error(), s)
			}
			assert.NotContains(t, err.Error(), "\n")
			require.NoError(t, sb.Close())
		})
	}
	_, err := New(Config{LockServerCmd: "server --port {port} {listen}"})
	require.ErrorIs(t, err, ErrConfig)
	_, err = New(Config{LockServerCmd: "srv {listen}", Unsafe: "check-then-set"})
	require.ErrorIs(t, err, ErrConfig)
}

// ownHandler is a LockServerFunc made of locksim's own lock server, as a
// user's code would be: an etcd client dialing through env.Dial.
func ownHandler(ctx context.Context, env LockServerEnv) (http.Handler, io.Closer, error) {
	s, err := lockserver.New(lockserver.Config{Name: env.Name, Endpoints: env.Endpoints, EtcdTimeout: time.Second,
		DialContext: env.Dial})
	if err != nil {
		return nil, nil, err
	}
	if err := s.Start(ctx); err != nil {
		return nil, nil, err
	}
	return s.Handler(), s, nil
}

// A LockServerFunc plugs into the sandbox like locksim's own: its handler is
// served at the lock server's address behind the balancer, a pause holds
// every byte into and out of it, a partition cuts its etcd traffic, a crash
// closes it and a restart builds it again.
func TestLockServerFuncTakesFaults(t *testing.T) {
	var built, closed int
	fn := func(ctx context.Context, env LockServerEnv) (http.Handler, io.Closer, error) {
		built++
		h, c, err := ownHandler(ctx, env)
		return h, closerFunc(func() error { closed++; return c.Close() }), err
	}
	sb := start(t, Config{LockServerFunc: fn, LockServers: 2})
	ctx := t.Context()
	sb.StartWorkload(ctx)
	require.Eventually(t, func() bool { return sb.Status().Cycles >= 10 }, 20*time.Second, 10*time.Millisecond)
	assert.Equal(t, 2, built)
	require.Eventually(t, func() bool { return len(sb.State().Locks) > 0 }, 10*time.Second, 10*time.Millisecond,
		"who holds what, as GET /locks/{id} answers")

	require.NoError(t, sb.Pause("lockserver-1"))
	held := make(chan error, 1)
	go func() { held <- acquireVia(ctx, sb, "lockserver-1", "paused-1") }()
	select {
	case err := <-held:
		t.Fatalf("a paused lock server answered: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, sb.Resume("lockserver-1"))
	require.NoError(t, <-held)

	id, err := sb.Faults().Apply(ctx, faults.Step{Fault: faults.FaultPartition, Isolate: "lockserver-2"})
	require.NoError(t, err)
	err = acquireVia(ctx, sb, "lockserver-2", "cut-2")
	require.True(t, errors.Is(err, lockserver.ErrUnavailable) || errors.Is(err, lockserver.ErrOutcomeUnknown), "%v", err)
	sb.Faults().Undo(ctx, id)

	require.NoError(t, sb.Crash("lockserver-2"))
	assert.Equal(t, 1, closed)
	require.NoError(t, sb.Restart(ctx, "lockserver-2"))
	assert.Equal(t, 3, built)
	require.Eventually(t, func() bool { return acquireVia(ctx, sb, "lockserver-2", "restarted-2") == nil }, 20*time.Second, 50*time.Millisecond)

	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	sb.DrainWorkload(dctx)
	cancel()
	ops, err := sb.History()
	require.NoError(t, err)
	res := history.Check(ops, history.Options{Timeout: 30 * time.Second})
	assert.Equal(t, history.Linearizable, res.Lock)
	assert.Equal(t, history.Linearizable, res.Resource)
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
