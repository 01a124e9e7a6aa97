package lockserver

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) {
	wal.SegmentSizeBytes = 1 << 20 // process-wide: small WAL files for throwaway members
	os.Exit(m.Run())
}

// testEtcd is one embedded etcd member for a test.
type testEtcd struct {
	e    *embed.Etcd
	url  string
	once sync.Once
	cli  *clientv3.Client
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startEtcd boots a single member (TickMs 10, ElectionMs 100) and stops it
// (HardStop + Close) in Cleanup.
func startEtcd(t *testing.T) *testEtcd { return startEtcdB(t) }

// startEtcdB is startEtcd for tests and benchmarks.
func startEtcdB(t testing.TB) *testEtcd {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "m1"
	cfg.Dir = t.TempDir()
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.UnsafeNoFsync = true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	peer, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	client, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	e, err := embed.StartEtcd(cfg)
	require.NoError(t, err)
	te := &testEtcd{e: e, url: client.String()}
	t.Cleanup(te.stop)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(10 * time.Second):
		t.Fatal("etcd did not become ready")
	}
	te.cli, err = clientv3.New(clientv3.Config{Endpoints: []string{te.url}, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { te.cli.Close() })
	return te
}

// stop hard-stops the member; safe to call twice.
func (te *testEtcd) stop() {
	te.once.Do(func() {
		te.e.Server.HardStop()
		te.e.Close()
	})
}

// startServer starts a lock server against te and closes it in Cleanup.
func startServer(t *testing.T, te *testEtcd, mod func(*Config)) (*Server, *Client) {
	t.Helper()
	cfg := Config{Name: "ls-test", Endpoints: []string{te.url}, EtcdTimeout: time.Second}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s, &Client{BaseURL: s.URL(), ClientID: "client-test"}
}

// revision returns etcd's current revision.
func (te *testEtcd) revision(t *testing.T) int64 {
	t.Helper()
	resp, err := te.cli.Get(t.Context(), "/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	return resp.Header.Revision
}

// newTestHTTPClient is an HTTP client of its own (its idle connections are
// not shared with other tests).
func newTestHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// lockLease returns the lease the lock key of res is attached to in etcd
// (0 when the lock is not held), and the key's CreateRevision.
func lockLease(t *testing.T, te *testEtcd, res string) (clientv3.LeaseID, int64) {
	t.Helper()
	resp, err := te.cli.Get(t.Context(), lockKey(res))
	require.NoError(t, err)
	if len(resp.Kvs) == 0 {
		return 0, 0
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease), resp.Kvs[0].CreateRevision
}

// remainingTTL is etcd's remaining TTL of a lease in whole seconds (-1 once
// it has expired).
func remainingTTL(t *testing.T, te *testEtcd, id clientv3.LeaseID) int64 {
	t.Helper()
	resp, err := te.cli.TimeToLive(t.Context(), id)
	require.NoError(t, err)
	return resp.TTL
}
