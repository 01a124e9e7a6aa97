package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/web"
	"github.com/locksim/locksim/web/webtest"
)

// startCommand runs `locksim args...` in-process until the test ends and
// returns the web UI's URL once it serves.
func startCommand(t *testing.T, args ...string) (url string, stdout, stderr *syncBuffer) {
	t.Helper()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	urls := make(chan string, 1)
	m := &Main{Stdout: stdout, Stderr: stderr, ReadyUI: func(u string) { urls <- u }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- m.Run(ctx, args) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Errorf("locksim %s did not stop", args[0])
		}
	})
	select {
	case url = <-urls:
	case code := <-done:
		t.Fatalf("locksim %v exited %d: %s", args, code, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("locksim %v: no web UI after 60 s: %s", args, stderr.String())
	}
	return url, stdout, stderr
}

// TestBrowserAgainstRealSandbox runs the classroom browser checks (three
// members and one leader, crash the leader and see another within 3 s,
// partition and heal, the gc-pause scenario's narration) against `locksim
// up` with the real etcd members. It skips without Chromium unless
// LOCKSIM_REQUIRE_BROWSER=1; a failure saves a screenshot (see webtest).
func TestBrowserAgainstRealSandbox(t *testing.T) {
	if _, err := os.Stat(webtest.ChromiumPath); err != nil {
		if os.Getenv("LOCKSIM_REQUIRE_BROWSER") == "1" {
			t.Fatalf("LOCKSIM_REQUIRE_BROWSER=1 but no chromium at %s: %v", webtest.ChromiumPath, err)
		}
		t.Skipf("no chromium at %s", webtest.ChromiumPath)
	}
	url, stdout, _ := startCommand(t, "up", "--web", "127.0.0.1:0", "--status-every", "0")
	require.Contains(t, stdout.String(), "web UI       "+url, "the UI's URL is printed")
	lines := strings.Split(stdout.String(), "\n")
	require.GreaterOrEqual(t, len(lines), 2)
	require.Contains(t, lines[1], url, "the UI's URL comes first among the addresses")
	webtest.RunBrowserChecks(t, url)

	if path := os.Getenv("LOCKSIM_SCREENSHOT"); path != "" {
		b := webtest.NewBrowser(t)
		require.NoError(t, b.Navigate(url))
		require.NoError(t, b.WaitJS(`document.querySelectorAll('#members [data-leader=true]').length === 1 && document.querySelectorAll('#timeline rect, #timeline line').length > 20`, 20*time.Second))
		sctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)) // 100: PNG (below 100 chromium encodes JPEG)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, png, 0o644))
	}
}

// TestBrowserBalancerGroup: `locksim up --balancers 2` draws both balancers
// and the virtual IP in front of them, balancer-1 master and owner; crashing
// it from the page moves the address to balancer-2, whose takeover is marked
// on its timeline lane; after a restart balancer-1 preempts.
func TestBrowserBalancerGroup(t *testing.T) {
	if _, err := os.Stat(webtest.ChromiumPath); err != nil {
		if os.Getenv("LOCKSIM_REQUIRE_BROWSER") == "1" {
			t.Fatalf("LOCKSIM_REQUIRE_BROWSER=1 but no chromium at %s: %v", webtest.ChromiumPath, err)
		}
		t.Skipf("no chromium at %s", webtest.ChromiumPath)
	}
	url, stdout, _ := startCommand(t, "up", "--balancers", "2", "--clients", "2", "--web", "127.0.0.1:0", "--status-every", "0")
	require.Contains(t, stdout.String(), "virtual IP", "the virtual address is printed")
	b := webtest.NewBrowser(t)
	require.NoError(t, b.Navigate(url))
	owner := func(name string) string {
		return fmt.Sprintf(`document.querySelector('#balancer-g [data-node=%q][data-state=master][data-owner=true]') !== null && document.querySelector('#balancer-g [data-vip=%q]') !== null`, name, name)
	}
	require.NoError(t, b.WaitJS(owner("balancer-1"), 20*time.Second), "balancer-1 master and owner")
	require.NoError(t, b.WaitJS(`document.querySelector('#balancer-g [data-node="balancer-2"][data-state=backup]') !== null`, 10*time.Second))
	require.NoError(t, b.Click(`[data-action=crash][data-target="balancer-1"]`))
	require.NoError(t, b.WaitJS(owner("balancer-2"), 20*time.Second), "balancer-2 takes the address")
	require.NoError(t, b.WaitJS(`document.querySelector('#balancer-g [data-node="balancer-1"][data-up=false]') !== null`, 10*time.Second))
	require.NoError(t, b.WaitJS(`document.querySelector('#timeline path.takeover[data-balancer="balancer-2"]') !== null`, 10*time.Second),
		"the takeover is on balancer-2's lane")
	require.NoError(t, b.Click(`[data-action=restart][data-target="balancer-1"]`))
	require.NoError(t, b.WaitJS(owner("balancer-1"), 20*time.Second), "restarted, balancer-1 preempts")
	assert.Empty(t, b.Exceptions())
}

// TestUpWebPortTaken: a taken --web port is one clear line and exit 2,
// before anything boots.
func TestUpWebPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr}
	// Booting makes the members' data dir in TMPDIR: one that cannot be
	// made would fail a boot with another error (and exit 1, not 2).
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	got := m.Run(t.Context(), []string{"up", "--web", ln.Addr().String()})
	assert.Equal(t, exitBadInput, got, "refused before booting: %s", stderr.String())
	assert.Contains(t, stderr.String(), "--web "+ln.Addr().String())
	assert.Contains(t, stderr.String(), "address already in use")
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(stderr.String()), "\n")+1, "one line: %q", stderr.String())
	assert.Empty(t, stdout.String())
}

const tinyScenario = `name: tiny-crash
description: a lock server crashes and comes back
seed: 3
duration: 3s
topology: {etcd: 3, lockServers: 2, balancer: round-robin, clients: 2}
lock: {ttl: 1s, wait: 1s}
workload: {resources: ["r"], hold: 20ms, think: 20ms}
steps:
  - at: 1s
    fault: crash
    target: lockserver-1
    restartAfter: 1s
    note: "lock server 1 goes away"
final: heal
`

// TestRunUIWritesFramesAndViewReplaysThem: `locksim run --ui` serves the
// page during a headless run and writes frames.jsonl next to history.jsonl;
// `locksim view` then serves that run for replay.
func TestRunUIWritesFramesAndViewReplaysThem(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tiny.yaml")
	require.NoError(t, os.WriteFile(file, []byte(tinyScenario), 0o644))
	out := filepath.Join(dir, "out")
	url, _, stderr := startCommand(t, "run", file, "--out", out, "--ui", "--web", "127.0.0.1:0")

	// The page gets live frames from the run's sandbox.
	require.Eventually(t, func() bool {
		var frames []web.Frame
		return getJSON(url+"api/frames", &frames) == nil && len(frames) > 5 && len(frames[len(frames)-1].Members) == 3
	}, 30*time.Second, 100*time.Millisecond, "live frames during the run")
	require.Eventually(t, func() bool {
		return strings.Contains(stderr.String(), "the web UI keeps serving")
	}, 60*time.Second, 100*time.Millisecond, "the run finishes: %s", stderr)

	runDir := filepath.Join(out, "tiny-crash", "default")
	require.FileExists(t, filepath.Join(runDir, "history.jsonl"))
	f, err := os.Open(filepath.Join(runDir, "frames.jsonl"))
	require.NoError(t, err)
	frames, err := web.ReadFramesJSONL(f)
	f.Close()
	require.NoError(t, err)
	require.Greater(t, len(frames), 10)
	final := frames[len(frames)-1]
	assert.Equal(t, "linearizable", final.Verdict.Lock, "the last frame carries the final verdict")
	crashSeen := false
	for _, fr := range frames {
		for _, x := range fr.Faults {
			crashSeen = crashSeen || (x.Fault == "crash" && x.Target == "lockserver-1")
		}
	}
	assert.True(t, crashSeen, "the scenario's crash is in the frames")

	viewURL, stdout, _ := startCommand(t, "view", out, "--web", "127.0.0.1:0")
	assert.Contains(t, stdout.String(), runDir)
	var replay []web.Frame
	require.NoError(t, getJSON(viewURL+"api/frames", &replay))
	assert.Len(t, replay, len(frames))
	resp, err := http.Get(viewURL + "history.html")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the run's porcupine view")
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
