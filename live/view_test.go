package live

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/scenarios"
	"github.com/locksim/locksim/sim"
	"github.com/locksim/locksim/web"
)

// start boots a real sandbox, closed when t ends; its clients cycle fast
// (20 ms hold, 10 ms think) unless cfg says otherwise.
func start(t *testing.T, cfg sim.Config) *sim.Sandbox {
	t.Helper()
	if cfg.Workload.Hold == 0 && cfg.Workload.Think == 0 {
		cfg.Workload.Hold, cfg.Workload.Think = 20*time.Millisecond, 10*time.Millisecond
	}
	sb, err := sim.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, sb.Start(ctx))
	t.Cleanup(func() { require.NoError(t, sb.Close()) })
	return sb
}

// startWeb boots a real sandbox with its workload, its Web view and a web
// server, all closed when t ends.
func startWeb(t *testing.T, cfg sim.Config, wcfg Config) (*sim.Sandbox, *View, *web.Server) {
	t.Helper()
	sb := start(t, cfg)
	sb.StartWorkload(t.Context())
	w := New(sb, wcfg)
	require.NoError(t, w.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, w.Close()) })
	srv, err := web.New(web.Config{Listen: "127.0.0.1:0", Scenarios: Scenarios, HistoryHTML: w.HistoryHTML}, w, w)
	require.NoError(t, err)
	require.NoError(t, srv.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, srv.Close()) })
	return sb, w, srv
}

func dialWS(t *testing.T, srv *web.Server) *websocket.Conn {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.DialContext(t.Context(), "ws://"+srv.Addr()+"/ws", nil)
	require.NoError(t, err)
	resp.Body.Close()
	t.Cleanup(func() { conn.Close() })
	return conn
}

func readFrame(t *testing.T, conn *websocket.Conn) web.Frame {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	var f web.Frame
	require.NoError(t, conn.ReadJSON(&f))
	return f
}

func leaders(f web.Frame) []string {
	var out []string
	for _, m := range f.Members {
		if m.Leader {
			out = append(out, m.Name)
		}
	}
	return out
}

// readUntil reads frames until ok holds for one (failing after timeout),
// checking that seq only increases and folding ops into seen.
func readUntil(t *testing.T, conn *websocket.Conn, last *uint64, timeout time.Duration, ok func(web.Frame) bool) web.Frame {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		f := readFrame(t, conn)
		require.Greater(t, f.Seq, *last, "frames arrive in increasing seq")
		*last = f.Seq
		if ok(f) {
			return f
		}
	}
	t.Fatalf("no frame satisfied the condition within %v", timeout)
	return web.Frame{}
}

// TestWebSnapshotThenOrderedFramesFromRealSandbox connects a Go websocket
// client to the real sandbox: the first message is a snapshot with three
// members and one leader; updates follow in increasing seq and carry the
// workload's ops (ids stable, pending ops completed later) and a crash the
// page asked for, after which another member leads.
func TestWebSnapshotThenOrderedFramesFromRealSandbox(t *testing.T) {
	sb, w, srv := startWeb(t, sim.Config{}, Config{})
	conn := dialWS(t, srv)

	snap := readFrame(t, conn)
	require.Len(t, snap.Members, 3)
	require.Len(t, snap.LockServers, 3)
	require.Equal(t, "fast", snap.Pace)
	require.True(t, snap.Fencing)
	last := snap.Seq
	if len(leaders(snap)) != 1 { // an election may be under way on a busy machine
		snap = readUntil(t, conn, &last, 30*time.Second, func(f web.Frame) bool { return len(leaders(f)) == 1 })
	}

	// Updates carry ops; an op first seen pending comes back completed.
	ops := map[uint64]web.Op{}
	for _, o := range snap.Ops {
		ops[o.ID] = o
	}
	completedLater := false
	readUntil(t, conn, &last, 10*time.Second, func(f web.Frame) bool {
		for _, o := range f.Ops {
			if prev, ok := ops[o.ID]; ok && prev.Outcome == "" && o.Outcome != "" {
				assert.Equal(t, prev.Call, o.Call, "op %d keeps its id", o.ID)
				completedLater = true
			}
			ops[o.ID] = o
		}
		return completedLater && len(ops) > 20
	})
	got := map[string]int{}
	for _, o := range ops {
		got[o.Op]++
	}
	assert.Positive(t, got["acquire"])
	assert.Positive(t, got["write"])

	// Crash the leader from the page: Do returns at once, frames show it
	// down and another leader.
	old := leaders(snap)[0]
	start := time.Now()
	require.NoError(t, w.Do(t.Context(), web.Command{Action: faults.FaultCrash, Target: old}))
	t.Logf("the crash request returned after %v (the member stops in the background)", time.Since(start).Round(time.Millisecond))
	f := readUntil(t, conn, &last, 10*time.Second, func(f web.Frame) bool {
		l := leaders(f)
		return len(l) == 1 && l[0] != old
	})
	t.Logf("new leader %v in frames %v after the crash", leaders(f), time.Since(start).Round(time.Millisecond))
	var crash *web.Fault
	for i := range f.Faults {
		if f.Faults[i].Fault == "crash" {
			crash = &f.Faults[i]
		}
	}
	if crash == nil { // the fault may have come in an earlier frame
		for _, x := range w.Frame().Faults {
			if x.Fault == "crash" {
				crash = &x
			}
		}
	}
	require.NotNil(t, crash, "the crash is a fault on the timeline")
	assert.Equal(t, old, crash.Target)

	require.NoError(t, w.Do(t.Context(), web.Command{Action: faults.FaultRestart, Target: old}))
	readUntil(t, conn, &last, 15*time.Second, func(f web.Frame) bool {
		for _, m := range f.Members {
			if m.Name == old {
				return m.Up
			}
		}
		return false
	})
	require.Eventually(t, func() bool {
		for _, x := range w.Frame().Faults {
			if x.Fault == "crash" && x.Target == old {
				return x.End > 0
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "the crash window closes on restart")
	_ = sb
}

// TestWebPartitionHealFencingAndVerdict drives the other controls: a
// partition shows cut links and a partitioned member, heal clears them,
// fencing toggles, and the live checker reaches a verdict whose porcupine
// view is served.
func TestWebPartitionHealFencingAndVerdict(t *testing.T) {
	_, w, srv := startWeb(t, sim.Config{}, Config{CheckEvery: 300 * time.Millisecond})
	ctx := t.Context()
	require.NoError(t, w.Do(ctx, web.Command{Action: faults.FaultPartition, Groups: [][]string{{"etcd-1"}, {"etcd-2", "etcd-3"}}}))
	require.Eventually(t, func() bool {
		f := w.Frame()
		cut := map[string]bool{}
		for _, l := range f.Links {
			if l.Cut {
				cut[l.From+">"+l.To] = true
			}
		}
		part := false
		for _, m := range f.Members {
			if m.Name == "etcd-1" {
				part = m.Partitioned
			}
		}
		return part && cut["etcd-1>etcd-2"] && cut["etcd-3>etcd-1"] && !cut["etcd-2>etcd-3"]
	}, 30*time.Second, 50*time.Millisecond)

	require.NoError(t, w.Do(ctx, web.Command{Action: faults.FaultPause, Target: "client-1"}))
	require.NoError(t, w.Do(ctx, web.Command{Action: web.ActionHeal}))
	require.Eventually(t, func() bool {
		f := w.Frame()
		for _, c := range f.Clients {
			if c.Paused {
				return false
			}
		}
		return len(f.Links) == 0 && len(leaders(f)) == 1
	}, 10*time.Second, 50*time.Millisecond, "heal clears cuts and pauses")

	require.NoError(t, w.Do(ctx, web.Command{Action: web.ActionFencing, Value: false}))
	require.Eventually(t, func() bool { return !w.Frame().Fencing }, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, w.Do(ctx, web.Command{Action: web.ActionFencing, Value: true}))

	require.Eventually(t, func() bool {
		v := w.Frame().Verdict
		return v.Lock == "linearizable" && v.Resource == "linearizable" && v.CheckedOps > 0
	}, 10*time.Second, 50*time.Millisecond, "the live checker reports a verdict")

	resp, err := http.Get("http://" + srv.Addr() + "/history.html")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	assert.Contains(t, strings.ToLower(buf.String()), "<html", "porcupine's view")

	err = w.Do(ctx, web.Command{Action: faults.FaultCrash, Target: "nobody"})
	require.ErrorIs(t, err, web.ErrBadCommand, "not a component name")
	err = w.Do(ctx, web.Command{Action: faults.FaultCrash, Target: "client-1"})
	require.ErrorIs(t, err, web.ErrBadCommand, "clients are paused, not crashed")
	err = w.Do(ctx, web.Command{Action: faults.FaultCrash, Target: "lockserver-9"})
	require.ErrorIs(t, err, sim.ErrUnknownNode, "no such lock server")
}

// TestWebScenarioStepMode runs the gc-pause scenario on the live sandbox
// from the page in step mode: it waits before its step until continue, then
// fires it and narrates the step's note.
func TestWebScenarioStepMode(t *testing.T) {
	_, w, _ := startWeb(t, sim.Config{}, Config{CheckEvery: -1})
	ctx := t.Context()
	require.NoError(t, w.Do(ctx, web.Command{Action: web.ActionStepMode, Value: true}))
	require.ErrorIs(t, w.Do(ctx, web.Command{Action: web.ActionContinue}), ErrNoStep)
	require.NoError(t, w.Do(ctx, web.Command{Action: web.ActionRunScenario, Scenario: "gc-pause-past-lease"}))
	require.Eventually(t, func() bool {
		sc := w.Frame().Scenario
		return sc != nil && sc.Running && sc.WaitingToContinue && sc.Step == 0 && sc.Steps == 1
	}, 30*time.Second, 20*time.Millisecond, "stopped before the first step")

	require.NoError(t, w.Do(ctx, web.Command{Action: web.ActionContinue}))
	require.Eventually(t, func() bool {
		sc := w.Frame().Scenario
		return sc != nil && sc.Step == 1 && strings.Contains(sc.Note, "freezes")
	}, 10*time.Second, 20*time.Millisecond, "the step fired and its note narrates")
	require.Eventually(t, func() bool {
		for _, c := range w.Frame().Clients {
			if c.Name == "client-1" {
				return c.Paused
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "client-1 paused by the scenario")
	require.Eventually(t, func() bool {
		sc := w.Frame().Scenario
		return sc != nil && !sc.Running
	}, 15*time.Second, 50*time.Millisecond, "the scenario finishes (pause undone, final heal)")
	for _, c := range w.Frame().Clients {
		assert.False(t, c.Paused, "%s resumed", c.Name)
	}
}

// TestWebRelayAndRecordFrames follows two views in turn through one relay:
// seq keeps increasing and the second view's ids come after the first's;
// RecordFrames writes a frames.jsonl that web reads back.
func TestWebRelayAndRecordFrames(t *testing.T) {
	sb := start(t, sim.Config{})
	sb.StartWorkload(t.Context())
	relay := NewRelay()
	t.Cleanup(func() { require.NoError(t, relay.Close()) })
	ch, cancel := relay.Subscribe()
	defer cancel()

	var file bytes.Buffer
	var mu sync.Mutex
	first := New(sb, Config{CheckEvery: -1})
	require.NoError(t, first.Start(t.Context()))
	relay.Attach(first)
	stop := RecordFrames(first, webLockedBuffer{&mu, &file})
	var last uint64
	var maxID uint64
	deadline := time.After(10 * time.Second)
	for maxID < 10 {
		select {
		case f := <-ch:
			require.Greater(t, f.Seq, last)
			last = f.Seq
			for _, o := range f.Ops {
				maxID = max(maxID, o.ID)
			}
		case <-deadline:
			t.Fatal("no ops relayed")
		}
	}
	require.NoError(t, stop())
	require.NoError(t, first.Close())

	second := New(sb, Config{CheckEvery: -1})
	require.NoError(t, second.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, second.Close()) })
	relay.Attach(second)
	for got := false; !got; {
		select {
		case f := <-ch:
			require.Greater(t, f.Seq, last)
			last = f.Seq
			for _, o := range f.Ops {
				require.Greater(t, o.ID, maxID, "the second view's ops come after the first's")
				got = true
			}
		case <-deadline:
			t.Fatal("no ops from the second view")
		}
	}

	mu.Lock()
	frames, err := web.ReadFramesJSONL(bytes.NewReader(file.Bytes()))
	mu.Unlock()
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(frames), 2, "the snapshot and at least one update")
	require.Len(t, frames[0].Members, 3, "the first line is a snapshot")
	for i := 1; i < len(frames); i++ {
		require.Greater(t, frames[i].Seq, frames[i-1].Seq)
	}
}

type webLockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w webLockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestWebViewerCost measures what 30 websocket viewers cost the workload:
// acquires per second with none and with 30 reading, LOCKSIM_VIEWER_COST
// (e.g. "60s") of each, in six alternating rounds so that a change in the
// machine's background load hits both alike. Skipped unless that is set.
func TestWebViewerCost(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("LOCKSIM_VIEWER_COST"))
	if err != nil || d <= 0 {
		t.Skip("set LOCKSIM_VIEWER_COST=60s to measure")
	}
	sb, _, srv := startWeb(t, sim.Config{}, Config{})
	require.Eventually(t, func() bool { return sb.Status().AcquiresOK > 50 }, 20*time.Second, 100*time.Millisecond, "warm up")
	measure := func(window time.Duration) (acquires uint64, secs float64) {
		before := sb.Status()
		timer := time.NewTimer(window)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-t.Context().Done():
		}
		after := sb.Status()
		return after.AcquiresOK - before.AcquiresOK, (after.At - before.At).Seconds()
	}
	var msgs atomic.Int64
	connect := func() (closeAll func()) {
		var wg sync.WaitGroup
		var conns []*websocket.Conn
		for range 30 {
			conn := dialWS(t, srv)
			conns = append(conns, conn)
			wg.Go(func() {
				for {
					if _, _, err := conn.ReadMessage(); err != nil {
						return
					}
					msgs.Add(1)
				}
			})
		}
		require.Eventually(t, func() bool { return srv.Stats().Viewers == 30 }, 30*time.Second, 20*time.Millisecond)
		return func() {
			for _, c := range conns {
				c.Close()
			}
			wg.Wait()
			require.Eventually(t, func() bool { return srv.Stats().Viewers == 0 }, 30*time.Second, 20*time.Millisecond)
		}
	}
	const rounds = 3
	var noneN, withN uint64
	var noneS, withS float64
	for range rounds {
		n, s := measure(d / rounds)
		noneN, noneS = noneN+n, noneS+s
		closeAll := connect()
		n, s = measure(d / rounds)
		withN, withS = withN+n, withS+s
		closeAll()
	}
	none, with := float64(noneN)/noneS, float64(withN)/withS
	ratio := with / none
	st := srv.Stats()
	t.Logf("acquires/s without viewers %.1f, with 30 viewers %.1f: ratio %.3f (cost %.1f%%); %d messages read; dropped %d",
		none, with, ratio, 100*(1-ratio), msgs.Load(), st.Dropped)
	assert.Zero(t, st.Dropped, "no viewer dropped")
	assert.GreaterOrEqual(t, ratio, 0.9, "30 viewers cost at most 10%% of acquires/s")
}

// TestLiveCheckerExplainsAViolation: without fencing, the gc-pause scenario
// started from the page makes a stale write; the live checker's verdict
// carries an explanation whose operations are ops of the page's timeline.
func TestLiveCheckerExplainsAViolation(t *testing.T) {
	_, w, _ := startWeb(t, sim.Config{Unfenced: true}, Config{CheckEvery: 500 * time.Millisecond})
	ctx := t.Context()
	require.NoError(t, w.Do(ctx, web.Command{Action: web.ActionRunScenario, Scenario: "gc-pause-past-lease"}))
	var e web.Explanation
	require.Eventually(t, func() bool {
		v := w.Frame().Verdict
		for _, x := range v.Explanations {
			if x.Model == "resource" && v.Resource == "violated" {
				e = x
				return true
			}
		}
		return false
	}, 60*time.Second, 100*time.Millisecond, "the stale write is explained")
	t.Logf("%s: %s", e.Kind, e.Text)
	require.NotEmpty(t, e.Ops)
	assert.LessOrEqual(t, len(e.Ops), 4)
	assert.Contains(t, e.Text, "client-1", "the paused client is named")
	ops := map[uint64]web.Op{}
	for _, o := range w.Frame().Ops {
		ops[o.ID] = o
	}
	for _, id := range e.Ops {
		o, ok := ops[id]
		if assert.True(t, ok, "op %d is on the timeline", id) {
			assert.Contains(t, []string{"read", "write", "acquire", "release"}, o.Op)
		}
	}
}

// TestLongSessionKeepsARecentWindow: with the recorder bounded, a session
// that records many more operations than it keeps still publishes every op
// with an increasing id, and the live checker checks the recent window
// without a false alarm (releases of locks taken before the window).
func TestLongSessionKeepsARecentWindow(t *testing.T) {
	sb, w, _ := startWeb(t, sim.Config{HistoryKeep: 60}, Config{CheckEvery: 200 * time.Millisecond})
	require.Eventually(t, func() bool { return sb.Recorder().Len() > 400 }, 60*time.Second, 50*time.Millisecond)
	kept, first := sb.Recorder().OpsFrom(0)
	assert.LessOrEqual(t, len(kept), 60+6+3, "about HistoryKeep operations in memory (3 clients may each have one pending)")
	assert.Positive(t, first, "older operations were dropped")
	require.Eventually(t, func() bool {
		v := w.Frame().Verdict
		return v.CheckedOps > 0 && v.CheckedOps <= len(kept)+10 && v.At > int64(time.Second)
	}, 10*time.Second, 50*time.Millisecond, "the live checker checks the window")
	v := w.Frame().Verdict
	assert.Equal(t, "linearizable", v.Lock, "no false alarm from a window that begins mid-hold")
	assert.Equal(t, "linearizable", v.Resource)
	require.Eventually(t, func() bool {
		ops := w.Frame().Ops
		return len(ops) > 0 && ops[len(ops)-1].ID > 400
	}, 10*time.Second, 50*time.Millisecond, "op ids are sequence numbers, not positions in the window")
}

// TestWebShowsTheBalancerGroup: with two balancers the frames carry both,
// their VRRP state and the virtual address; a split between them (clicked
// in the page) shows two masters, and the address moves between them.
func TestWebShowsTheBalancerGroup(t *testing.T) {
	_, w, _ := startWeb(t, sim.Config{Balancers: 2}, Config{CheckEvery: -1})
	masters := func(f web.Frame) []string {
		var out []string
		for _, b := range f.Balancers {
			if b.Up && b.State == "master" {
				out = append(out, b.Name)
			}
		}
		return out
	}
	require.Eventually(t, func() bool {
		f := w.Frame()
		return len(f.Balancers) == 2 && f.VIP != nil && f.VIP.Owner == "balancer-1" && f.Balancers[0].OwnsVIP &&
			slices.Equal(masters(f), []string{"balancer-1"}) && f.Balancers[1].State == "backup" &&
			f.Balancers[1].Master == "balancer-1" // it has heard balancer-1's adverts (it starts without a master)
	}, 10*time.Second, 20*time.Millisecond, "balancer-1 master and owner, balancer-2 its backup")
	f := w.Frame()
	assert.Empty(t, f.Balancer.Name, "no single balancer")
	assert.Equal(t, 110, f.Balancers[0].Priority)
	assert.Positive(t, f.Balancers[0].AdvertsSent)
	assert.NotEmpty(t, f.Balancers[0].Reason)

	require.NoError(t, w.Do(t.Context(), web.Command{Action: faults.FaultPartition, Groups: [][]string{{"balancer-1"}, {"balancer-2"}}}))
	moves := f.VIP.Moves
	require.Eventually(t, func() bool {
		f := w.Frame()
		return len(masters(f)) == 2 && f.VIP.Moves > moves+2
	}, 10*time.Second, 20*time.Millisecond, "split brain: two masters, the address moving")
	assert.Contains(t, w.Frame().Balancers[1].Reason, "no advert from balancer-1")
}

// TestViewExportWritesTheSandboxTopology: clicks on balancer-1 export to a
// file that names two balancers, so that it parses and replays.
func TestViewExportWritesTheSandboxTopology(t *testing.T) {
	sb := start(t, sim.Config{Balancers: 2, NoPreempt: true, LockServers: 2, Workload: sim.Workload{Disabled: true}})
	w := New(sb, Config{CheckEvery: -1})
	t.Cleanup(func() { require.NoError(t, w.Close()) })
	cmds := []web.TimedCommand{{At: time.Second, Command: web.Command{Action: faults.FaultCrash, Target: "balancer-1"}}}
	sc, err := scenarios.Parse("recorded.yaml", w.Export("recorded", cmds))
	require.NoError(t, err)
	assert.Equal(t, 2, sc.Topology.Balancers)
	assert.Equal(t, 2, sc.Topology.LockServers)
	assert.True(t, sc.VRRP.NoPreempt)
	require.Len(t, sc.Steps, 1)
	assert.Equal(t, "balancer-1", sc.Steps[0].Target)

	_, err = scenarios.Parse("recorded.yaml", Export("recorded", cmds))
	assert.ErrorContains(t, err, `"balancer-1" does not exist`, "the default topology has one balancer")
}

// TestScenarioThatDoesNotFitIsRefused: a balancer scenario started from the
// page of a sandbox with one balancer is refused before anything runs,
// saying how to start a sandbox it fits.
func TestScenarioThatDoesNotFitIsRefused(t *testing.T) {
	sb := start(t, sim.Config{Workload: sim.Workload{Disabled: true}})
	w := New(sb, Config{CheckEvery: -1})
	require.NoError(t, w.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, w.Close()) })
	err := w.Do(t.Context(), web.Command{Action: web.ActionRunScenario, Scenario: "balancer-split-brain"})
	require.ErrorIs(t, err, web.ErrBadCommand)
	assert.ErrorContains(t, err, `"balancer-1" does not exist`)
	assert.ErrorContains(t, err, "--balancers 2")
	assert.Empty(t, sb.Events(), "nothing ran")
	assert.Nil(t, w.Frame().Scenario)
}
