package lockserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/cluster"
)

// startTLSCluster starts one etcd member that serves its client URL over
// TLS and requires a client certificate, and returns its URLs and a client
// TLS config with the CA and the client certificate.
func startTLSCluster(t *testing.T) ([]string, cluster.ClientTLSFiles, *tls.Config) {
	t.Helper()
	c, err := cluster.New(cluster.Config{Members: 1, Dir: t.TempDir(), UnsafeNoFsync: true, ClientTLS: true, ClientCertAuth: true})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, c.Close()) })
	require.NoError(t, c.Start(t.Context()))
	files, err := c.ClientTLSFiles()
	require.NoError(t, err)
	tlsCfg, err := files.TLSConfig()
	require.NoError(t, err)
	return c.ClientURLs(), files, tlsCfg
}

// TestEtcdTLS: with Config.TLS the lock server and the Observer reach
// members that serve TLS and require client certificates; a lock cycle
// works and the Observer records it. Without the client certificate the
// lock server cannot reach etcd.
func TestEtcdTLS(t *testing.T) {
	urls, files, tlsCfg := startTLSCluster(t)
	s, err := New(Config{Name: "ls-tls", Endpoints: urls, EtcdTimeout: time.Second, TLS: tlsCfg})
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	c := &Client{BaseURL: s.URL(), ClientID: "client-tls"}

	start := time.Now()
	o, err := NewObserver(t.Context(), urls, tlsCfg, func() time.Duration { return time.Since(start) })
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, o.Close()) })

	g, err := acquireSoon(t, c, "tls")
	require.NoError(t, err)
	require.NoError(t, o.Sync(t.Context()))
	assert.Equal(t, g.FencingToken, o.Held()["tls"].FencingToken, "the Observer sees the grant over TLS")
	require.NoError(t, c.Release(t.Context(), "tls", g.LockToken))
	require.NoError(t, o.Sync(t.Context()))
	_, ok := o.Released(HashToken(g.LockToken))
	assert.True(t, ok, "the Observer sees the release receipt over TLS")

	caOnly, err := cluster.ClientTLSFiles{CAFile: files.CAFile}.TLSConfig()
	require.NoError(t, err)
	_, noCert := startServerTLS(t, urls, caOnly)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = noCert.Acquire(ctx, "tls", 5*time.Second, 0)
	require.ErrorIs(t, err, ErrUnavailable, "a lock server without the client certificate")
}

// acquireSoon acquires res, retrying for up to 10 s while etcd is not
// reachable yet (the client connects lazily).
func acquireSoon(t *testing.T, c *Client, res string) (Grant, error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		g, err := c.Acquire(ctx, res, 10*time.Second, 0)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return g, err
		}
		select {
		case <-t.Context().Done():
			return g, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func startServerTLS(t *testing.T, urls []string, tlsCfg *tls.Config) (*Server, *Client) {
	t.Helper()
	s, err := New(Config{Endpoints: urls, EtcdTimeout: time.Second, TLS: tlsCfg})
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s, &Client{BaseURL: s.URL(), ClientID: "client-tls"}
}

// TestTLSNeedsHTTPSEndpoints: clientv3 would send a TLS config's requests
// to an http:// endpoint in plain text, so New and NewObserver refuse it.
func TestTLSNeedsHTTPSEndpoints(t *testing.T) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	eps := []string{"https://127.0.0.1:2379", "http://127.0.0.1:2380"}
	_, err := New(Config{Endpoints: eps, TLS: tlsCfg})
	assert.ErrorContains(t, err, `"http://127.0.0.1:2380" is not https://`)
	_, err = NewObserver(t.Context(), eps, tlsCfg, func() time.Duration { return 0 })
	assert.ErrorContains(t, err, `"http://127.0.0.1:2380" is not https://`)
	_, err = New(Config{Endpoints: eps[:1], TLS: tlsCfg})
	assert.NoError(t, err)
}

// TestProbeTLS: ProbeTLS tells a TLS config the members refuse from one
// they accept, and a member that is down from both.
func TestProbeTLS(t *testing.T) {
	urls, files, full := startTLSCluster(t)
	caOnly, err := cluster.ClientTLSFiles{CAFile: files.CAFile}.TLSConfig()
	require.NoError(t, err)
	plain := startEtcd(t) // plain http
	down := fmt.Sprintf("https://127.0.0.1:%d", freePort(t))
	web := httptest.NewServer(http.NotFoundHandler()) // answers a TLS hello in plain HTTP
	t.Cleanup(web.Close)

	tests := []struct {
		name      string
		endpoints []string
		cfg       *tls.Config
		want      string // "" for no error
	}{
		{"CA and client certificate", urls, full, ""},
		{"no client certificate", urls, caOnly, "certificate required"},
		{"the system's CAs", urls, &tls.Config{MinVersion: tls.VersionTLS12}, "certificate signed by unknown authority"},
		{"a member without TLS", []string{strings.Replace(plain.url, "http://", "https://", 1)}, full, "does it serve TLS?"},
		{"an HTTP server", []string{strings.Replace(web.URL, "http://", "https://", 1)}, full, "does not look like a TLS handshake"},
		{"a member that is down", []string{down}, full, ""},
		{"http endpoints are skipped", []string{plain.url}, full, ""},
		{"one bad among good", append([]string{down}, append(urls, strings.Replace(plain.url, "http://", "https://", 1))...), full, "does it serve TLS?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			err := ProbeTLS(ctx, tt.endpoints, tt.cfg)
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrTLSRefused)
			assert.ErrorContains(t, err, tt.want)
			t.Log(err)
		})
	}
}
