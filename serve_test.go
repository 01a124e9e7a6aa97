package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServeBadFlags: every bad command line is one line naming the problem,
// exit 2, and nothing starts (Run returns at once although its ctx never ends).
func TestServeBadFlags(t *testing.T) {
	dir := t.TempDir()
	badKeys := filepath.Join(dir, "keys.txt")
	require.NoError(t, os.WriteFile(badKeys, []byte("# keys\nk1 client-1\nk2\n"), 0o600))
	const etcd = "http://127.0.0.1:2379"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no component", []string{"serve"}, "Usage:"},
		{"unknown component", []string{"serve", "proxy"}, `unknown component "proxy"`},
		{"lockserver without etcd", []string{"serve", "lockserver", "--listen", "127.0.0.1:0"}, "--etcd is required"},
		{"lockserver without listen", []string{"serve", "lockserver", "--etcd", etcd}, "--listen is required"},
		{"bad etcd url", []string{"serve", "lockserver", "--etcd", "127.0.0.1:2379", "--listen", "127.0.0.1:0"}, `"127.0.0.1:2379" is not an http://HOST:PORT URL`},
		{"https etcd", []string{"serve", "lockserver", "--etcd", "https://127.0.0.1:2379", "--listen", ":0"}, "is not an http://HOST:PORT URL"},
		{"bad backend url", []string{"serve", "balancer", "--backends", "http://127.0.0.1:1/x", "--listen", ":0"}, "is not an http(s)://HOST:PORT URL"},
		{"bad listen", []string{"serve", "lockserver", "--etcd", etcd, "--listen", "8081"}, `--listen "8081": want HOST:PORT`},
		{"bad log format", []string{"serve", "lockserver", "--etcd", etcd, "--listen", ":0", "--log-format", "xml"}, "--log-format must be text or json"},
		{"bad log level", []string{"serve", "lockserver", "--etcd", etcd, "--listen", ":0", "--log-level", "loud"}, "--log-level must be"},
		{"negative rate", []string{"serve", "lockserver", "--etcd", etcd, "--listen", ":0", "--rate-limit", "-1"}, "--rate-limit must be >= 0"},
		{"missing auth file", []string{"serve", "lockserver", "--etcd", etcd, "--listen", ":0", "--auth-file", filepath.Join(dir, "nope")}, "--auth-file"},
		{"malformed auth file", []string{"serve", "lockserver", "--etcd", etcd, "--listen", ":0", "--auth-file", badKeys}, badKeys + ":3:"},
		{"unknown flag", []string{"serve", "lockserver", "--etc", etcd}, "flag provided but not defined: -etc"},
		{"extra argument", []string{"serve", "balancer", "--backends", "http://127.0.0.1:1", "--listen", ":0", "now"}, `unexpected argument "now"`},
		{"balancer without backends", []string{"serve", "balancer", "--listen", ":0"}, "--backends is required"},
		{"bad policy", []string{"serve", "balancer", "--backends", "http://127.0.0.1:1", "--listen", ":0", "--policy", "random"}, "random"},
		{"bad mode", []string{"serve", "balancer", "--backends", "http://127.0.0.1:1", "--listen", ":0", "--mode", "udp"}, `--mode must be http or tcp, got "udp"`},
		{"bad admin address", []string{"serve", "balancer", "--backends", "http://127.0.0.1:1", "--listen", ":0", "--admin-listen", "9090"}, `--admin-listen "9090": want HOST:PORT`},
		{"bad rise", []string{"serve", "balancer", "--backends", "http://127.0.0.1:1", "--listen", ":0", "--rise", "0"}, "--rise and --fall must be at least 1"},
		{"bad interval", []string{"serve", "balancer", "--backends", "http://127.0.0.1:1", "--listen", ":0", "--health-interval", "0s"}, "--health-interval must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			m := &Main{Stdout: &stdout, Stderr: &stderr}
			done := make(chan int, 1)
			go func() { done <- m.Run(t.Context(), tt.args) }()
			select {
			case got := <-done:
				assert.Equal(t, exitBadInput, got)
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return: something started")
			}
			assert.Contains(t, stderr.String(), tt.want)
			assert.Empty(t, stdout.String(), "nothing listens")
			if tt.args[len(tt.args)-1] != "serve" {
				assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %q", stderr.String())
			}
		})
	}
}

// TestServeBalancerTCPMode runs `serve balancer --mode tcp` in process in
// front of a stand-in lock server: requests pass through unchanged (no
// X-Locksim-Backend: nothing parsed), the admin address answers the
// balancer's own paths, and SIGTERM (ctx) drains an idle kept-alive
// connection and exits 0.
func TestServeBalancerTCPMode(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"path":"`+r.URL.Path+`"}`)
	}))
	t.Cleanup(backend.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	admin := ln.Addr().String()
	require.NoError(t, ln.Close())

	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- m.Run(ctx, []string{"serve", "balancer", "--backends", backend.URL, "--listen", "127.0.0.1:0",
			"--mode", "tcp", "--admin-listen", admin, "--drain-timeout", "5s"})
	}()
	var base string
	require.Eventually(t, func() bool {
		line, ok := strings.CutPrefix(strings.TrimSpace(stdout.String()), ListeningPrefix)
		base = line
		return ok
	}, 10*time.Second, 5*time.Millisecond, "listening line; stderr: %s", stderr.String())

	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	get := func(url string) (int, string, http.Header) {
		t.Helper()
		resp, err := hc.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b), resp.Header
	}
	code, body, h := get(base + "/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, `{"path":"/metrics"}`, body, "the main address passes every path to a lock server")
	assert.Empty(t, h.Get("X-Locksim-Backend"))
	code, body, _ = get("http://" + admin + "/balancer/health")
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"status":"ok","backendsUp":1,"backends":1}`, body)

	cancel() // SIGTERM; the first connection is idle, kept alive by tr
	select {
	case got := <-done:
		assert.Equal(t, exitOK, got, "stderr: %s", stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("serve balancer did not stop")
	}
}
