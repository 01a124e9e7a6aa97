package cluster

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.uber.org/zap"
)

// member is one etcd member's identity and, while it runs, its embed.Etcd.
type member struct {
	name string
	dir  string // data dir, set by Start
	// peerPort is the advertised peer port (in the initial cluster, dialled
	// by the other members): its peer proxy's. listenPort is the member's
	// real peer listener, which only the proxy dials.
	peerPort   int
	listenPort int
	clientPort int
	clientTLS  bool   // the client URL is https (Config.ClientTLS)
	id         uint64 // Raft member ID, learnt after the first start; guarded by Cluster.mu

	// etcd is the running instance, nil while down, and gate the gate in
	// front of its client services; both guarded by Cluster.mu.
	etcd *embed.Etcd
	gate *gate
	// stopped is closed when the last Crash's background Close is done; nil
	// if the member never crashed. Guarded by Cluster.mu.
	stopped chan struct{}
}

func (m *member) peerURL(host string) string {
	if m.peerPort == m.listenPort { // direct: no proxy
		return httpURL(host, m.peerPort)
	}
	return "https://" + hostPort(host, m.peerPort)
}
func (m *member) listenPeerURL(host string) string { return httpURL(host, m.listenPort) }
func (m *member) clientURL(host string) string {
	if m.clientTLS {
		return "https://" + hostPort(host, m.clientPort)
	}
	return httpURL(host, m.clientPort)
}

// hasData reports whether the member's data dir holds a WAL to restart from.
func (m *member) hasData() bool {
	return m.dir != "" && wal.Exist(filepath.Join(m.dir, "member", "wal"))
}

// initialCluster is etcd's --initial-cluster for all members.
func (c *Cluster) initialCluster() string {
	parts := make([]string, len(c.members))
	for i, m := range c.members {
		parts[i] = m.name + "=" + m.peerURL(c.cfg.Host)
	}
	return strings.Join(parts, ",")
}

// embedConfig builds the embed config of m; state is embed.ClusterStateFlagNew
// or embed.ClusterStateFlagExisting.
func (c *Cluster) embedConfig(m *member, state string) (*embed.Config, error) {
	peer, err := url.Parse(m.peerURL(c.cfg.Host))
	if err != nil {
		return nil, fmt.Errorf("cluster: %s peer url: %w", m.name, err)
	}
	listenPeer, err := url.Parse(m.listenPeerURL(c.cfg.Host))
	if err != nil {
		return nil, fmt.Errorf("cluster: %s listen peer url: %w", m.name, err)
	}
	client, err := url.Parse(m.clientURL(c.cfg.Host))
	if err != nil {
		return nil, fmt.Errorf("cluster: %s client url: %w", m.name, err)
	}
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.ListenPeerUrls = []url.URL{*listenPeer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.InitialCluster = c.initialCluster()
	if !c.direct {
		cfg.PeerTLSInfo = c.pki.tlsInfo(m.name)
	}
	if c.clientPKI != nil {
		cfg.ClientTLSInfo = c.clientPKI.serverInfo()
	}
	cfg.InitialClusterToken = "locksim"
	cfg.ClusterState = state
	cfg.TickMs = c.cfg.TickMs
	cfg.ElectionMs = c.cfg.ElectionMs
	// etcd fast-forwards a booting member's election clock once its peer
	// connections are up. If that member has already won the first
	// election by then, the jump trips CheckQuorum: it steps down at once
	// and loses its uncommitted entries, among them its own publication,
	// which etcd retries only after its 5 s request timeout (seen on busy
	// machines, where connections come up late). Without the advance the
	// first election simply waits one election timeout.
	cfg.InitialElectionTickAdvance = false
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = c.cfg.AutoCompactionRetention
	cfg.QuotaBackendBytes = c.cfg.QuotaBackendBytes
	cfg.SnapshotCount = c.cfg.SnapshotCount
	cfg.SnapshotCatchUpEntries = c.cfg.SnapshotCatchUpEntries
	cfg.UnsafeNoFsync = c.cfg.UnsafeNoFsync
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(c.logger.With(zap.String("member", m.name)))
	return cfg, nil
}

// startEtcd boots m's server behind a new gate and returns once it runs (not
// necessarily ready).
func (c *Cluster) startEtcd(m *member, state string) (*embed.Etcd, *gate, error) {
	cfg, err := c.embedConfig(m, state)
	if err != nil {
		return nil, nil, err
	}
	g := newGate()
	cfg.GRPCAdditionalServerOptions = g.options()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: start %s: %w", m.name, err)
	}
	return e, g, nil
}

// stopEtcd stops e abruptly: no leadership transfer, no graceful drain. g
// closes first, so no client request reaches the store HardStop closes.
func stopEtcd(e *embed.Etcd, g *gate) {
	g.close()
	e.Server.HardStop()
	e.Close()
}
