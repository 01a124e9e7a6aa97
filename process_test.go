package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
	"github.com/locksim/locksim/sim/clients"
	"github.com/locksim/locksim/sim/resource"
)

// buildLocksim builds the command into a temporary dir, with -race when
// the test binary has it (so the build reuses the test's compiled packages).
func buildLocksim(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the process test needs the go command")
	bin := filepath.Join(t.TempDir(), "locksim")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		args = append(args, "-race")
	}
	start := time.Now()
	out, err := exec.Command(goBin, append(args, ".")...).CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	t.Logf("go %s .: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return bin
}

func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// proc is one `locksim serve` OS process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	url    string        // parsed from the "listening on" line
	stderr *syncBuffer   // its logs
	done   chan struct{} // closed when it exited
	exit   int           // its exit code, valid after done (-1: killed by a signal)
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startProc starts `bin args...`, waits for its listening line and stops it
// (SIGTERM, then SIGKILL) at cleanup, asserting a clean exit unless the test
// killed it.
func startProc(t *testing.T, bin, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), ListeningPrefix); ok {
				select {
				case urls <- u:
				default:
				}
			}
		}
		_ = p.cmd.Wait() // after stdout is drained, as exec requires
		p.exit = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
				assert.Equal(t, 0, p.exit, "%s: exit code after SIGTERM", name)
			case <-time.After(15 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
				t.Errorf("%s did not stop within 15s of SIGTERM", name)
			}
		}
		assert.NotContains(t, p.stderr.String(), "DATA RACE", name)
		if t.Failed() {
			t.Logf("--- %s stderr ---\n%s", name, p.stderr.String())
		}
	})
	select {
	case p.url = <-urls:
	case <-p.done:
		t.Fatalf("%s exited with %d before listening:\n%s", name, p.exit, p.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("%s printed no %q line within 20s:\n%s", name, ListeningPrefix, p.stderr.String())
	}
	return p
}

// waitExit waits for p to exit and returns its exit code.
func (p *proc) waitExit(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.exit
	case <-time.After(within):
		t.Fatalf("%s still running after %v", p.name, within)
		return 0
	}
}

// scrape fetches url+"/metrics" and parses it with the Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// metricValue returns the value of the family's sample whose labels include
// want (a counter, gauge, or a histogram's count), and whether there is one.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// workload runs clients through the balancer: acquire, read and write a
// fenced counter, release; every operation is recorded.
type workload struct {
	baseURL  string
	rec      *history.Recorder
	resource *resource.Store

	mu      sync.Mutex
	granted int
}

func (w *workload) grantedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.granted
}

func (w *workload) client(ctx context.Context, id, key string, resources []string) {
	c := &lockserver.Client{BaseURL: w.baseURL, ClientID: id, APIKey: key}
	ttl, wait := 2*time.Second, time.Second
	for i := 0; ctx.Err() == nil; i++ {
		res := resources[i%len(resources)]
		ttlS, waitS := ttl.Seconds(), wait.Seconds()
		p := w.rec.Begin(id, history.OpAcquire, res, history.Input{TTL: &ttlS, Timeout: &waitS})
		actx, cancel := context.WithTimeout(context.Background(), wait+5*time.Second)
		g, err := c.Acquire(actx, res, ttl, wait)
		cancel()
		if err != nil {
			p.End(clients.OutcomeOf(err), clients.ErrOutput(err))
			continue
		}
		gttl := g.TTL.Seconds()
		p.End(history.OK, history.Output{LockToken: g.LockToken, FencingToken: g.FencingToken,
			ExpiresAt: g.ExpiresAt.Format(time.RFC3339Nano), TTL: &gttl})
		w.mu.Lock()
		w.granted++
		w.mu.Unlock()

		rp := w.rec.Begin(id, history.OpRead, res, history.Input{FencingToken: g.FencingToken})
		v, rerr := w.resource.Read(res, g.FencingToken)
		if rerr != nil {
			rp.End(history.Fail, history.Output{Rejected: true})
		} else {
			rp.End(history.OK, history.Output{Value: &v})
			if time.Now().Before(g.ExpiresAt) {
				nv := v + 1
				wp := w.rec.Begin(id, history.OpWrite, res, history.Input{FencingToken: g.FencingToken, Value: &nv})
				if err := w.resource.Write(res, g.FencingToken, nv); err != nil {
					wp.End(history.Fail, history.Output{Rejected: true})
				} else {
					wp.End(history.OK, history.Output{})
				}
			}
		}
		rl := w.rec.Begin(id, history.OpRelease, res, history.Input{LockToken: g.LockToken})
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = c.Release(rctx, res, g.LockToken)
		cancel()
		if err != nil {
			rl.End(clients.OutcomeOf(err), clients.ErrOutput(err))
		} else {
			rl.End(history.OK, history.Output{})
		}
	}
}

// TestServeProcesses is issue 7's proof: three `serve lockserver` processes
// and one `serve balancer` process, against a 3-member etcd cluster they did
// not start, carry concurrent clients through the kill -9 of one lock
// server without a violation; /metrics of both kinds parse; SIGTERM drains.
func TestServeProcesses(t *testing.T) {
	bin := buildLocksim(t)

	etcd, err := cluster.New(cluster.Config{Dir: t.TempDir(), UnsafeNoFsync: true})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, etcd.Close()) })
	require.NoError(t, etcd.Start(t.Context()))
	etcdURLs := strings.Join(etcd.ClientURLs(), ",")

	const clients = 6
	authFile := filepath.Join(t.TempDir(), "keys.txt")
	var keys strings.Builder
	keys.WriteString("# key client\n")
	for i := range clients + 2 {
		fmt.Fprintf(&keys, "key-%d client-%d\n", i, i)
	}
	require.NoError(t, os.WriteFile(authFile, []byte(keys.String()), 0o600))

	var servers []*proc
	var backends []string
	for i := range 3 {
		name := fmt.Sprintf("ls-%d", i+1)
		p := startProc(t, bin, name, "serve", "lockserver", "--etcd", etcdURLs, "--listen", "127.0.0.1:0",
			"--name", name, "--auth-file", authFile, "--log-format", "json")
		servers = append(servers, p)
		backends = append(backends, p.url)
	}
	lb := startProc(t, bin, "balancer", "serve", "balancer", "--backends", strings.Join(backends, ","),
		"--listen", "127.0.0.1:0", "--policy", "least-connections", "--health-interval", "100ms", "--rise", "2", "--fall", "2")

	t.Run("kill -9 of a lock server mid-run: no violation", func(t *testing.T) {
		before := scrape(t, servers[0].url)
		w := &workload{baseURL: lb.url, rec: history.NewRecorder(time.Now()), resource: resource.New(true)}
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for i := range clients {
			wg.Go(func() {
				w.client(ctx, fmt.Sprintf("client-%d", i), fmt.Sprintf("key-%d", i), []string{"order:1", "order:2"})
			})
		}
		defer func() { cancel(); wg.Wait() }()

		require.Eventually(t, func() bool { return w.grantedCount() >= 30 }, 20*time.Second, 10*time.Millisecond,
			"30 grants before the kill")
		victim := servers[1]
		killedAt := w.rec.Since()
		require.NoError(t, victim.cmd.Process.Signal(syscall.SIGKILL))
		assert.Equal(t, -1, victim.waitExit(t, 5*time.Second), "killed by a signal")
		atKill := w.grantedCount()
		require.Eventually(t, func() bool { return w.grantedCount() >= atKill+30 }, 20*time.Second, 10*time.Millisecond,
			"30 more grants after the kill, through the two survivors")
		cancel()
		wg.Wait()

		ops := w.rec.Ops()
		res := history.Check(ops, history.Options{Timeout: 15 * time.Second})
		t.Logf("%d ops (kill at %v), grants %d, check %+v", len(ops), time.Duration(killedAt), w.grantedCount(), res.Counts)
		assert.Equal(t, history.Linearizable, res.Lock, "lock: %v", res.Details)
		assert.Equal(t, history.Linearizable, res.Resource, "resource: %v", res.Details)

		// (b) the survivors' and the balancer's /metrics parse and moved.
		after := scrape(t, servers[0].url)
		ok := map[string]string{"result": "ok"}
		b0, _ := metricValue(before, "lockserver_acquires_total", ok)
		a0, found := metricValue(after, "lockserver_acquires_total", ok)
		require.True(t, found)
		assert.Greater(t, a0, b0, "lockserver_acquires_total{result=ok} moved")
		n, found := metricValue(after, "lockserver_http_requests_total", map[string]string{"route": "/locks/acquire", "code": "200"})
		assert.True(t, found && n > 0, "requests by route and status")
		n, found = metricValue(after, "lockserver_acquire_duration_seconds", ok)
		assert.True(t, found && n > 0, "acquire latency histogram")
		for _, name := range []string{"lockserver_locks_held", "lockserver_waiters", "lockserver_queued_waiters",
			"lockserver_etcd_errors_total", "lockserver_grant_txns_total", "go_goroutines", "process_resident_memory_bytes"} {
			assert.Contains(t, after, name)
		}
		assert.Equal(t, dto.MetricType_HISTOGRAM, after["lockserver_acquire_duration_seconds"].GetType())

		require.Eventually(t, func() bool {
			up, found := metricValue(scrape(t, lb.url), "loadbalancer_backend_up", map[string]string{"backend": victim.url})
			return found && up == 0
		}, 30*time.Second, 50*time.Millisecond, "the balancer marks the killed backend down")
		lbm := scrape(t, lb.url)
		for _, s := range []*proc{servers[0], servers[2]} {
			up, _ := metricValue(lbm, "loadbalancer_backend_up", map[string]string{"backend": s.url})
			assert.Equal(t, 1.0, up, "%s up", s.name)
			n, _ := metricValue(lbm, "loadbalancer_requests_total", map[string]string{"backend": s.url, "code": "200"})
			assert.Positive(t, n, "requests by backend and status: %s", s.name)
			_, found := metricValue(lbm, "loadbalancer_backend_in_flight", map[string]string{"backend": s.url})
			assert.True(t, found, "in-flight gauge of %s", s.name)
		}
	})

	t.Run("GET /balancer/health answers keepalived's check script", func(t *testing.T) {
		resp, err := http.Get(lb.url + "/balancer/health")
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		assert.JSONEq(t, `{"status":"ok","backendsUp":2,"backends":3}`, string(body), "one lock server was killed above")
	})

	t.Run("SIGTERM drains an in-flight blocking acquire, exit 0", func(t *testing.T) {
		drain := startProc(t, bin, "ls-drain", "serve", "lockserver", "--etcd", etcdURLs, "--listen", "127.0.0.1:0",
			"--name", "ls-drain", "--auth-file", authFile, "--drain-timeout", "20s")
		holder := &lockserver.Client{BaseURL: servers[0].url, ClientID: "client-6", APIKey: "key-6"}
		waiter := &lockserver.Client{BaseURL: drain.url, ClientID: "client-7", APIKey: "key-7"}
		held, err := holder.Acquire(t.Context(), "drain:1", 10*time.Second, 0)
		require.NoError(t, err)

		type result struct {
			g   lockserver.Grant
			err error
		}
		got := make(chan result, 1)
		go func() {
			g, err := waiter.Acquire(context.Background(), "drain:1", 5*time.Second, 15*time.Second)
			got <- result{g, err}
		}()
		require.Eventually(t, func() bool {
			v, _ := metricValue(scrape(t, drain.url), "lockserver_waiters", nil)
			return v == 1
		}, 10*time.Second, 20*time.Millisecond, "the acquire is queued on ls-drain")

		require.NoError(t, drain.cmd.Process.Signal(syscall.SIGTERM))
		probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
		require.Eventually(t, func() bool {
			resp, err := probe.Get(drain.url + "/health")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			return err != nil
		}, 30*time.Second, 10*time.Millisecond, "a draining server takes no new connections")
		select {
		case r := <-got:
			t.Fatalf("the acquire ended before the lock was released: %+v", r)
		case <-drain.done:
			t.Fatalf("ls-drain exited (%d) with a request in flight", drain.exit)
		default:
		}

		require.NoError(t, holder.Release(t.Context(), "drain:1", held.LockToken))
		select {
		case r := <-got:
			require.NoError(t, r.err, "the in-flight acquire was answered while draining")
			assert.Greater(t, r.g.FencingToken, held.FencingToken)
		case <-time.After(10 * time.Second):
			t.Fatal("the in-flight acquire got no answer")
		}
		assert.Equal(t, 0, drain.waitExit(t, 10*time.Second), "clean exit after the drain")
		assert.Contains(t, drain.stderr.String(), "shutting down")
	})
}
