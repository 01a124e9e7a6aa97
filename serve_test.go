package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/lockserver"
)

// TestServeBadFlags: every bad command line is one line naming the problem,
// exit 2, and nothing starts (Run returns at once although its ctx never ends).
func TestServeBadFlags(t *testing.T) {
	dir := t.TempDir()
	badKeys := filepath.Join(dir, "keys.txt")
	require.NoError(t, os.WriteFile(badKeys, []byte("# keys\nk1 client-1\nk2\n"), 0o600))
	const etcd, etcds = "http://127.0.0.1:2379", "https://127.0.0.1:2379"
	ca, _ := writeSelfSigned(t, dir, "ca")
	cert, key := writeSelfSigned(t, dir, "client")
	_, otherKey := writeSelfSigned(t, dir, "other")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no component", []string{"serve"}, "Usage:"},
		{"unknown component", []string{"serve", "proxy"}, `unknown component "proxy"`},
		{"lockserver without etcd", []string{"serve", "lockserver", "--listen", "127.0.0.1:0"}, "--etcd is required"},
		{"lockserver without listen", []string{"serve", "lockserver", "--etcd", etcd}, "--listen is required"},
		{"bad etcd url", []string{"serve", "lockserver", "--etcd", "127.0.0.1:2379", "--listen", "127.0.0.1:0"}, `"127.0.0.1:2379" is not an http(s)://HOST:PORT URL`},
		{"https etcd without a CA", []string{"serve", "lockserver", "--etcd", "https://127.0.0.1:2379", "--listen", ":0"}, "--etcd has https:// URLs: give --etcd-cacert"},
		{"http and https etcd", []string{"serve", "lockserver", "--etcd", "https://127.0.0.1:2379,http://127.0.0.1:2380", "--listen", ":0", "--etcd-cacert", ca}, "--etcd mixes http:// and https://"},
		{"TLS flags with http etcd", []string{"serve", "lockserver", "--etcd", etcd, "--listen", ":0", "--etcd-cacert", ca}, "need https:// --etcd URLs"},
		{"cert without key", []string{"serve", "lockserver", "--etcd", etcds, "--listen", ":0", "--etcd-cacert", ca, "--etcd-cert", cert}, "--etcd-cert and --etcd-key go together"},
		{"key without cert", []string{"serve", "lockserver", "--etcd", etcds, "--listen", ":0", "--etcd-cacert", ca, "--etcd-key", key}, "--etcd-cert and --etcd-key go together"},
		{"missing CA file", []string{"serve", "lockserver", "--etcd", etcds, "--listen", ":0", "--etcd-cacert", filepath.Join(dir, "nope.crt")}, "--etcd-cacert: open " + filepath.Join(dir, "nope.crt")},
		{"unreadable CA file", []string{"serve", "lockserver", "--etcd", etcds, "--listen", ":0", "--etcd-cacert", dir}, "is a directory"},
		{"CA file without a certificate", []string{"serve", "lockserver", "--etcd", etcds, "--listen", ":0", "--etcd-cacert", badKeys}, "--etcd-cacert " + badKeys + ": no PEM certificate in it"},
		{"missing cert file", []string{"serve", "lockserver", "--etcd", etcds, "--listen", ":0", "--etcd-cacert", ca, "--etcd-cert", filepath.Join(dir, "nope.crt"), "--etcd-key", key}, "--etcd-cert: open "},
		{"missing key file", []string{"serve", "lockserver", "--etcd", etcds, "--listen", ":0", "--etcd-cacert", ca, "--etcd-cert", cert, "--etcd-key", filepath.Join(dir, "nope.key")}, "--etcd-key: open "},
		{"mismatched cert and key", []string{"serve", "lockserver", "--etcd", etcds, "--listen", ":0", "--etcd-cacert", ca, "--etcd-cert", cert, "--etcd-key", otherKey}, "private key does not match public key"},
		{"key file without a key", []string{"serve", "lockserver", "--etcd", etcds, "--listen", ":0", "--etcd-cacert", ca, "--etcd-cert", cert, "--etcd-key", cert}, "--etcd-key " + cert},
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
			requireBadInput(t, tt.args, tt.want)
		})
	}
}

// TestUpRefusesHTTPSEtcd: `up` has no TLS to etcd, so an https:// etcd URL
// is one line and exit 2, not a start that times out.
func TestUpRefusesHTTPSEtcd(t *testing.T) {
	requireBadInput(t, []string{"up", "--etcd", "https://127.0.0.1:2379", "--web", "off"}, "up has no TLS to etcd")
}

// requireBadInput runs the command line and asserts that it ends at once
// with exit 2 and the single line want on stderr (the usage for a bare
// "serve"), and that nothing listened.
func requireBadInput(t *testing.T, args []string, want string) {
	t.Helper()
	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr}
	done := make(chan int, 1)
	go func() { done <- m.Run(t.Context(), args) }()
	select {
	case got := <-done:
		assert.Equal(t, exitBadInput, got)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return: something started")
	}
	t.Logf("stderr: %s", stderr.String())
	assert.Contains(t, stderr.String(), want)
	assert.Empty(t, stdout.String(), "nothing listens")
	if args[len(args)-1] != "serve" {
		assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %q", stderr.String())
	}
}

// writeSelfSigned writes a self-signed certificate and its key to
// dir/name.crt and dir/name.key.
func writeSelfSigned(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile
}

// TestServeLockServerEtcdTLS: `serve lockserver` with --etcd-cacert,
// --etcd-cert and --etcd-key reaches etcd members that serve their client
// URLs over TLS and require client certificates: a lock cycle through it
// works, and SIGTERM (its ctx ending) stops it cleanly. Credentials the
// members refuse, and https:// without a CA, are one line and exit 2
// before anything listens.
func TestServeLockServerEtcdTLS(t *testing.T) {
	c, err := cluster.New(cluster.Config{Dir: t.TempDir(), UnsafeNoFsync: true, ClientTLS: true, ClientCertAuth: true})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, c.Close()) })
	require.NoError(t, c.Start(t.Context()))
	files, err := c.ClientTLSFiles()
	require.NoError(t, err)
	etcd := strings.Join(c.ClientURLs(), ",")
	base := []string{"serve", "lockserver", "--etcd", etcd, "--listen", "127.0.0.1:0"}
	flags := func(extra ...string) []string { return append(slices.Clone(base), extra...) }

	t.Run("CA and client certificate: a lock cycle", func(t *testing.T) {
		var stdout, stderr syncBuffer
		m := &Main{Stdout: &stdout, Stderr: &stderr}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan int, 1)
		go func() {
			done <- m.Run(ctx, flags("--etcd-cacert", files.CAFile, "--etcd-cert", files.CertFile, "--etcd-key", files.KeyFile))
		}()
		var url string
		require.Eventually(t, func() bool {
			select {
			case code := <-done:
				t.Fatalf("serve lockserver exited with %d: %s", code, stderr.String())
			default:
			}
			line, ok := strings.CutPrefix(strings.TrimSpace(stdout.String()), ListeningPrefix)
			url = line
			return ok
		}, 20*time.Second, 10*time.Millisecond, "the listening line")

		cli := &lockserver.Client{BaseURL: url, ClientID: "client-tls"}
		var g lockserver.Grant
		for deadline := time.Now().Add(20 * time.Second); ; { // the etcd client connects lazily
			actx, acancel := context.WithTimeout(t.Context(), 5*time.Second)
			g, err = cli.Acquire(actx, "tls:1", 10*time.Second, 0)
			acancel()
			if err == nil || time.Now().After(deadline) {
				break
			}
			select {
			case <-t.Context().Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		require.NoError(t, err, "acquire through the lock server over TLS to etcd")
		st, err := cli.Get(t.Context(), "tls:1")
		require.NoError(t, err)
		assert.Equal(t, g.FencingToken, st.FencingToken)
		require.NoError(t, cli.Release(t.Context(), "tls:1", g.LockToken))
		st, err = cli.Get(t.Context(), "tls:1")
		require.NoError(t, err)
		assert.False(t, st.Held, "released")

		cancel()
		select {
		case code := <-done:
			assert.Equal(t, exitOK, code, "%s", stderr.String())
		case <-time.After(15 * time.Second):
			t.Fatal("serve lockserver did not stop")
		}
		assert.Contains(t, stderr.String(), "etcd_tls=true")
	})

	otherCA, _ := writeSelfSigned(t, t.TempDir(), "other-ca")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no CA", flags(), "--etcd has https:// URLs: give --etcd-cacert"},
		{"no client certificate", flags("--etcd-cacert", files.CAFile), "remote error: tls: certificate required"},
		{"another CA", flags("--etcd-cacert", otherCA, "--etcd-cert", files.CertFile, "--etcd-key", files.KeyFile), "x509: certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireBadInput(t, tt.args, tt.want)
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
