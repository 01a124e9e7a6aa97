package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// newTLSClient is newClient over TLS (tlsCfg may be nil: no TLS).
func newTLSClient(t *testing.T, tlsCfg *tls.Config, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
		TLS:         tlsCfg,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// requireRefused asserts that cli cannot read (within 2 s) and logs why.
func requireRefused(t *testing.T, cli *clientv3.Client, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := cli.Get(ctx, "/k")
	require.Error(t, err, why)
	t.Logf("%s: %v", why, err)
}

// handshake opens a TLS connection to the host of rawURL and reads from it
// until the server says anything (an alert: with TLS 1.3 a server rejects
// the client's certificate only after the client's handshake is done) or
// 500 ms pass (accepted: a gRPC server waits for the client to speak).
func handshake(t *testing.T, rawURL string, cfg *tls.Config) error {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	d := tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	defer conn.Close()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(500*time.Millisecond)))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return err
}

// TestClientTLS: with ClientTLS the members serve their client URLs over
// https only, to a client that trusts the cluster's client CA; with
// ClientCertAuth also only to one that presents the client certificate.
// It holds for a restarted member too.
func TestClientTLS(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Config{ClientTLS: true, ClientCertAuth: true})
	for _, u := range c.ClientURLs() {
		require.True(t, strings.HasPrefix(u, "https://"), u)
	}
	files, err := c.ClientTLSFiles()
	require.NoError(t, err)
	for _, f := range []string{files.CAFile, files.CertFile, files.KeyFile} {
		require.FileExists(t, f)
	}
	full, err := files.TLSConfig()
	require.NoError(t, err)
	caOnly, err := ClientTLSFiles{CAFile: files.CAFile}.TLSConfig()
	require.NoError(t, err)

	cli := newTLSClient(t, full, c.ClientURLs()...)
	put(t, cli, "/k", "v")
	for _, name := range c.Names() {
		u, err := c.ClientURL(name)
		require.NoError(t, err)
		requireValue(t, newTLSClient(t, full, u), "/k", "v")
	}

	requireRefused(t, newTLSClient(t, caOnly, c.ClientURLs()...), "no client certificate")
	requireRefused(t, newTLSClient(t, &tls.Config{MinVersion: tls.VersionTLS12}, c.ClientURLs()...), "the system's CAs")
	// The same refusals, seen in the TLS handshake itself.
	require.NoError(t, handshake(t, c.ClientURLs()[0], full))
	assert.ErrorContains(t, handshake(t, c.ClientURLs()[0], caOnly), "certificate required")
	var unknownCA x509.UnknownAuthorityError
	assert.ErrorAs(t, handshake(t, c.ClientURLs()[0], &tls.Config{MinVersion: tls.VersionTLS12}), &unknownCA)
	plain := strings.ReplaceAll(c.ClientURLs()[0], "https://", "http://")
	requireRefused(t, newTLSClient(t, nil, plain), "plain http")

	victim := c.Names()[1]
	require.NoError(t, c.Crash(victim))
	require.NoError(t, c.Restart(t.Context(), victim))
	u, err := c.ClientURL(victim)
	require.NoError(t, err)
	requireValue(t, newTLSClient(t, full, u), "/k", "v")
	requireRefused(t, newTLSClient(t, caOnly, u), "restarted member, no client certificate")

	require.NoError(t, c.Close())
	assert.NoFileExists(t, files.CAFile, "Close removes the client TLS files")
	_, err = c.ClientTLSFiles()
	assert.ErrorIs(t, err, ErrClosed)
}

// TestClientTLSServerOnly: without ClientCertAuth the CA is all a client
// needs, and no client certificate is made.
func TestClientTLSServerOnly(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Config{Members: 1, ClientTLS: true})
	files, err := c.ClientTLSFiles()
	require.NoError(t, err)
	assert.Empty(t, files.CertFile)
	assert.Empty(t, files.KeyFile)
	tlsCfg, err := files.TLSConfig()
	require.NoError(t, err)
	put(t, newTLSClient(t, tlsCfg, c.ClientURLs()...), "/k", "v")
	require.NoError(t, handshake(t, c.ClientURLs()[0], tlsCfg), "no client certificate asked for")
	requireRefused(t, newTLSClient(t, &tls.Config{MinVersion: tls.VersionTLS12}, c.ClientURLs()...), "the system's CAs")
}

func TestClientTLSFilesErrors(t *testing.T) {
	t.Parallel()
	_, err := New(Config{ClientCertAuth: true})
	require.ErrorIs(t, err, ErrInvalidConfig, "ClientCertAuth without ClientTLS")

	plain, err := New(Config{})
	require.NoError(t, err)
	_, err = plain.ClientTLSFiles()
	assert.ErrorIs(t, err, ErrNoClientTLS)
	for _, u := range plain.ClientURLs() {
		assert.True(t, strings.HasPrefix(u, "http://"), u)
	}

	notYet, err := New(Config{ClientTLS: true})
	require.NoError(t, err)
	_, err = notYet.ClientTLSFiles()
	assert.ErrorIs(t, err, ErrNotStarted)
}
