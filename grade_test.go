package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/scenarios"
	"github.com/locksim/locksim/web"
	"github.com/locksim/locksim/web/webtest"
)

// pythonLockServer is the command line of the example Python lock server,
// or skips the test without python3 (unless LOCKSIM_REQUIRE_PYTHON=1).
func pythonLockServer(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("LOCKSIM_REQUIRE_PYTHON") == "1" {
			t.Fatalf("LOCKSIM_REQUIRE_PYTHON=1 but no python3: %v", err)
		}
		t.Skip("no python3")
	}
	file, err := filepath.Abs(filepath.Join("examples", "python", "lockserver.py"))
	require.NoError(t, err)
	return p + " " + file + " --listen {listen} --etcd {etcd} --name {name}"
}

// A lock server command that does not start, a command line without
// {listen}, and a URL where nothing answers are bad input: one line that
// names the problem, exit 2.
func TestLockServerCommandBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		says []string
	}{
		{"grade: not found", []string{"grade", "--seeds", "1", "--out", t.TempDir(), "--lockserver-cmd", "no-such-lock-server-xyz --listen {listen}", "testdata/short-safe.yaml"},
			[]string{"locksim: grade: lockserver-1 exited with status 127", "not found"}},
		{"grade: no listen", []string{"grade", "--lockserver-cmd", "python3 server.py --etcd {etcd}"}, []string{"has no {listen}"}},
		{"grade: nothing at the URL", []string{"grade", "--url", "http://127.0.0.1:1"}, []string{"locksim: grade: http://127.0.0.1:1:", "connection refused"}},
		{"run: not found", []string{"run", "--out", t.TempDir(), "--lockserver-cmd", "no-such-lock-server-xyz {listen}", "testdata/short-safe.yaml"},
			[]string{"locksim: run: short-safe [default]: lockserver-1 exited with status 127"}},
		{"up: not found", []string{"up", "--web", "off", "--status-every", "0", "--lockserver-logs", t.TempDir(), "--lockserver-cmd", "no-such-lock-server-xyz {listen}"},
			[]string{"locksim: up: lockserver-1 exited with status 127"}},
		{"up: unknown placeholder", []string{"up", "--lockserver-cmd", "srv {listen} {port}"}, []string{"unknown placeholder {port}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runMain(t, tc.args...)
			assert.Equal(t, exitBadInput, code, stderr)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			for _, s := range tc.says {
				assert.Contains(t, last, s)
			}
		})
	}
}

// The example Python lock server runs under `locksim up` with the web view:
// from the page it is crashed and restarted, paused and resumed (a real
// SIGSTOP: the page shows it paused), and partitioned from the etcd
// members and healed, while the simulated clients keep going; the live
// checker then finds the histories linearizable.
func TestPythonLockServerFromThePage(t *testing.T) {
	cmd := pythonLockServer(t)
	if _, err := os.Stat(webtest.ChromiumPath); err != nil {
		if os.Getenv("LOCKSIM_REQUIRE_BROWSER") == "1" {
			t.Fatalf("LOCKSIM_REQUIRE_BROWSER=1 but no chromium at %s: %v", webtest.ChromiumPath, err)
		}
		t.Skipf("no chromium at %s", webtest.ChromiumPath)
	}
	url, stdout, _ := startCommand(t, "up", "--web", "127.0.0.1:0", "--status-every", "0",
		"--lockserver-cmd", cmd, "--lockserver-logs", t.TempDir())
	require.Contains(t, stdout.String(), "lock servers run")
	b := webtest.NewBrowser(t)
	require.NoError(t, b.Navigate(url))
	node := func(name string) string { return fmt.Sprintf(`document.querySelector('[data-lockserver=%q]')`, name) }

	require.NoError(t, b.Click(`[data-action=crash][data-target="lockserver-1"]`))
	require.NoError(t, b.WaitJS(node("lockserver-1")+`.dataset.up === 'false'`, webtest.Step))
	require.NoError(t, b.Click(`[data-action=restart][data-target="lockserver-1"]`))
	require.NoError(t, b.WaitJS(node("lockserver-1")+`.dataset.up === 'true'`, webtest.Step))

	require.NoError(t, b.Click(`[data-action=pause][data-target="lockserver-2"]`))
	require.NoError(t, b.WaitJS(node("lockserver-2")+`.dataset.paused === 'true'`, webtest.Step))
	require.NoError(t, b.Click(`[data-action=resume][data-target="lockserver-2"]`))
	require.NoError(t, b.WaitJS(node("lockserver-2")+`.dataset.paused === 'false'`, webtest.Step))

	require.NoError(t, b.Click(`#nodes input[data-group=a][data-node="lockserver-3"]`))
	for _, m := range []string{"etcd-1", "etcd-2", "etcd-3"} {
		require.NoError(t, b.Click(fmt.Sprintf(`#nodes input[data-group=b][data-node=%q]`, m)))
	}
	require.NoError(t, b.Click(`[data-action=partition]`))
	require.NoError(t, b.WaitJS(fmt.Sprintf(`document.querySelector('[data-link=%q][data-cut=true]')`, webtest.LinkKey("lockserver-3", "etcd-1")), webtest.Step))
	require.NoError(t, b.Click(`[data-action=heal]`))
	require.NoError(t, b.WaitJS(`document.querySelectorAll('#links [data-cut=true]').length === 0`, webtest.Step))

	// The histories of all of it are checked by the live checker: wait for
	// a verdict on a history that ends after the heal.
	frames := func() []web.Frame {
		var fs []web.Frame
		_ = getJSON(url+"api/frames", &fs)
		return fs
	}
	fs := frames()
	require.NotEmpty(t, fs)
	healed := fs[len(fs)-1].T
	var last web.Verdict
	require.Eventually(t, func() bool {
		fs := frames()
		if len(fs) == 0 {
			return false
		}
		last = fs[len(fs)-1].Verdict
		return last.At > healed && last.CheckedOps > 200 && last.Lock != ""
	}, 90*time.Second, 250*time.Millisecond, "the last verdict: %+v (healed at %d)", &last, healed)
	seen := map[string]bool{}
	for _, f := range frames() {
		for _, x := range f.Faults {
			seen[x.Fault+" "+x.Target] = true
		}
	}
	for _, want := range []string{"crash lockserver-1", "pause lockserver-2"} {
		assert.True(t, seen[want], "%s is on the timeline: %v", want, seen)
	}
	assert.Equal(t, "linearizable", last.Lock, "%+v", last)
	assert.Equal(t, "linearizable", last.Resource, "%+v", last)
	assert.Empty(t, b.Exceptions())

	// The session exported from the page replays against the same lock
	// server: the file carries its command line.
	resp, err := http.Get(url + "api/export")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	sc, err := scenarios.Parse("recorded.yaml", body)
	require.NoError(t, err, "%s", body)
	assert.Equal(t, cmd, sc.LockServers.Command)
	assert.NotEmpty(t, sc.Steps, "the clicks are steps")
}
