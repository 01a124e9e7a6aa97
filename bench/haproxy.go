package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// formatRow is a one-line summary of a row (progress output).
func formatRow(r Row) string {
	return fmt.Sprintf("%-16s c=%-3d keys=%-11s %9.0f cycles/s  p50 %7.2f ms  p95 %7.2f ms  p99 %7.2f ms  writes/cycle %.2f  errors %d %s",
		r.Name, r.Concurrency, r.Keys, r.CyclesPerSec, r.P50Ms, r.P95Ms, r.P99Ms, r.WritesPerCycle, r.Errors, r.Note)
}

// childProc is a balancer running as a child process in front of the lock
// servers: haproxy, or our own (`locksim serve balancer`).
type childProc struct {
	cmd  *exec.Cmd
	dir  string // removed on Close ("" for none)
	url  string
	done chan struct{}
	out  lockedWriter // its stderr (and haproxy's stdout)
}

// HAProxyConfig is the design's haproxy configuration in mode "http" or
// "tcp": round robin over the backends (host:port), an HTTP health check
// GET /health every 2 s. In mode tcp haproxy balances connections and
// copies their bytes, as our balancer's tcp mode does.
func HAProxyConfig(mode, listen string, backends []string) string {
	var b strings.Builder
	keepAlive := ""
	if mode == "http" {
		keepAlive = "    option http-keep-alive\n"
	}
	fmt.Fprintf(&b, `global
    maxconn 8192

defaults
    mode %s
%s    timeout connect 2s
    timeout client 60s
    timeout server 60s

frontend locks
    bind %s
    default_backend lockservers

backend lockservers
    balance roundrobin
    option httpchk GET /health
`, mode, keepAlive, listen)
	for i, be := range backends {
		fmt.Fprintf(&b, "    server lockserver-%d %s check inter 2s\n", i+1, strings.TrimPrefix(be, "http://"))
	}
	return b.String()
}

func startHAProxy(ctx context.Context, path, mode string, backends []string) (*childProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "locksim-haproxy-")
	if err != nil {
		return nil, err
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(HAProxyConfig(mode, listen, backends)), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	h := &childProc{dir: dir, url: "http://" + listen, done: make(chan struct{})}
	h.cmd = exec.Command(path, "-db", "-q", "-f", cfgPath)
	h.cmd.Stdout, h.cmd.Stderr = &h.out, &h.out
	if err := h.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	go func() { _ = h.cmd.Wait(); close(h.done) }()
	if err := h.awaitReady(ctx); err != nil {
		_ = h.Close()
		return nil, err
	}
	return h, nil
}

// awaitReady waits until a request goes through the child to a lock server.
func (h *childProc) awaitReady(ctx context.Context) error {
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	err := retryUntil(ctx, 5*time.Second, func() error {
		select {
		case <-h.done:
			return nil
		default:
		}
		resp, err := hc.Get(h.url + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: /health: HTTP %d", filepath.Base(h.cmd.Path), resp.StatusCode)
		}
		return nil
	})
	select {
	case <-h.done:
		return fmt.Errorf("%s exited: %s", filepath.Base(h.cmd.Path), strings.TrimSpace(h.output()))
	default:
	}
	return err
}

func (h *childProc) output() string {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	return h.out.b.String()
}

// pid is the child's process id (0 when there is none).
func (h *childProc) pid() int {
	if h == nil || h.cmd.Process == nil {
		return 0
	}
	return h.cmd.Process.Pid
}

// Close kills the child and waits for it.
func (h *childProc) Close() error {
	select {
	case <-h.done:
	default:
		_ = h.cmd.Process.Kill()
		<-h.done
	}
	if h.dir == "" {
		return nil
	}
	return os.RemoveAll(h.dir)
}

type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
