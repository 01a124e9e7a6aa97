package cluster

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// startCluster starts a cluster for one test and closes it at cleanup.
func startCluster(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	cfg.UnsafeNoFsync = true
	c, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	start := time.Now()
	require.NoError(t, c.Start(t.Context()))
	t.Logf("start %d members: %v", len(c.Names()), time.Since(start).Round(time.Millisecond))
	return c
}

// newClient returns a silent clientv3 client on the given endpoints only.
func newClient(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// clientFor is a client connected only to the named members.
func clientFor(t testing.TB, c *Cluster, names ...string) *clientv3.Client {
	t.Helper()
	var eps []string
	for _, n := range names {
		u, err := c.ClientURL(n)
		require.NoError(t, err)
		eps = append(eps, u)
	}
	return newClient(t, eps...)
}

// put writes key=val, retrying for up to 30 s: on a busy machine an
// unrelated election can lose a proposal, which etcd reports only after its
// request timeout. (Every put in these tests is idempotent.)
func put(t *testing.T, cli *clientv3.Client, key, val string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := cli.Put(ctx, key, val)
		cancel()
		if err == nil || time.Now().After(deadline) || t.Context().Err() != nil {
			require.NoError(t, err)
			return
		}
		t.Logf("put %s: %v (retrying)", key, err)
	}
}

// requireValue waits until the member(s) cli is connected to hold key=want,
// reading without going through the leader. A member that is catching up,
// or not yet serving clients after a restart, is retried for up to 30 s.
func requireValue(t *testing.T, cli *clientv3.Client, key, want string) {
	t.Helper()
	var got string
	var err error
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		var resp *clientv3.GetResponse
		resp, err = cli.Get(ctx, key, clientv3.WithSerializable())
		if err != nil || len(resp.Kvs) == 0 {
			return false
		}
		got = string(resp.Kvs[0].Value)
		return got == want
	}, 30*time.Second, 10*time.Millisecond, "%s: want %q, got %q (last error %v)", key, want, got, err)
}

func mustLeader(t *testing.T, c *Cluster) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	name, err := c.WaitLeader(ctx)
	require.NoError(t, err)
	return name
}

// followers returns the members other than leader.
func others(c *Cluster, name string) []string {
	var out []string
	for _, n := range c.Names() {
		if n != name {
			out = append(out, n)
		}
	}
	return out
}

func statusOf(t *testing.T, c *Cluster, name string) MemberStatus {
	t.Helper()
	for _, s := range c.Status() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no status for %s", name)
	return MemberStatus{}
}

// requireFree asserts that the host:port of url can be listened on.
func requireFree(t *testing.T, rawURL string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", u.Host)
	require.NoError(t, err, "port of %s still taken", rawURL)
	require.NoError(t, ln.Close())
}

// waitStopped waits for the background half of the last Crash of name.
func waitStopped(t *testing.T, c *Cluster, name string) {
	t.Helper()
	i, err := c.index(name)
	require.NoError(t, err)
	c.mu.RLock()
	stopped := c.members[i].stopped
	c.mu.RUnlock()
	require.NotNil(t, stopped)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: stop did not finish", name)
	}
}
