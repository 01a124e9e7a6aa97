package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/lockserver"
	"github.com/locksim/locksim/sim"
)

// TestUpExternalEtcdWithAuth: `locksim up --etcd URLS` runs the lock
// servers and the balancer against an etcd cluster it did not start, and
// `--auth-file` makes the API require keys.
func TestUpExternalEtcdWithAuth(t *testing.T) {
	c, err := cluster.New(cluster.Config{})
	require.NoError(t, err)
	require.NoError(t, c.Start(t.Context()))
	t.Cleanup(func() { c.Close() })

	keys := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(keys, []byte("# key client\nsecret-A client-A\n"), 0o600))

	ready := make(chan sim.Addresses, 1)
	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Ready: func(a sim.Addresses) { ready <- a }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- m.Run(ctx, []string{"up", "--etcd", strings.Join(c.ClientURLs(), ","), "--auth-file", keys, "--web", "off", "--status-every", "0"})
	}()
	var addrs sim.Addresses
	select {
	case addrs = <-ready:
	case code := <-done:
		t.Fatalf("up exited %d: %s", code, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatal("up did not start")
	}
	defer func() {
		cancel()
		assert.Equal(t, exitOK, <-done)
	}()
	for name, u := range addrs.Etcd {
		assert.Contains(t, c.ClientURLs(), u, "%s is the external member", name)
	}
	anon := &lockserver.Client{BaseURL: addrs.Balancer, ClientID: "client-A"}
	_, err = anon.Acquire(t.Context(), "ext", 5*time.Second, 0)
	var apiErr *lockserver.Error
	require.True(t, errors.As(err, &apiErr), "got %v", err)
	assert.Equal(t, 401, apiErr.Status)

	keyed := &lockserver.Client{BaseURL: addrs.Balancer, ClientID: "client-A", APIKey: "secret-A"}
	g, err := keyed.Acquire(t.Context(), "ext", 5*time.Second, 0)
	require.NoError(t, err)
	require.NoError(t, keyed.Release(t.Context(), "ext", g.LockToken))
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "locksim is up") }, 10*time.Second, 10*time.Millisecond)
}

// TestUpBadAuthFile: a malformed key file is one line naming file:line, exit 2.
func TestUpBadAuthFile(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(keys, []byte("only-one-field\n"), 0o600))
	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr}
	code := m.Run(t.Context(), []string{"up", "--auth-file", keys, "--web", "off"})
	assert.Equal(t, exitBadInput, code)
	assert.Contains(t, stderr.String(), keys+":1")
	assert.Empty(t, stdout.String(), "nothing started")
}
