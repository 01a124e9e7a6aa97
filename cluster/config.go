package cluster

import (
	"errors"
	"fmt"
	"github.com/locksim/locksim/component"
	"net"
	"time"
)

// Sentinel errors. Every error returned by this package that concerns one of
// these conditions wraps the matching sentinel, so callers test with errors.Is.
var (
	// ErrUnknownMember: the name is not one of Names().
	ErrUnknownMember = errors.New("cluster: unknown member")
	// ErrMemberDown: the member is crashed (or not started) and the operation needs it running.
	ErrMemberDown = errors.New("cluster: member is down")
	// ErrMemberUp: the member is running and the operation needs it stopped (Restart).
	ErrMemberUp = errors.New("cluster: member is up")
	// ErrClosed: the cluster was closed.
	ErrClosed = errors.New("cluster: closed")
	// ErrNotStarted: Start has not completed successfully.
	ErrNotStarted = errors.New("cluster: not started")
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("cluster: already started")
	// ErrInvalidLink: a link from a member to itself, a member in two
	// partition groups, or a negative delay.
	ErrInvalidLink = errors.New("cluster: invalid link")
	// ErrNoData: Restart refused because the member's data dir holds no WAL
	// (restarting on an empty dir makes Raft panic and kills the process).
	ErrNoData = errors.New("cluster: member has no data to restart from")
	// ErrInvalidConfig: Config failed validation in New.
	ErrInvalidConfig = errors.New("cluster: invalid config")
	// ErrNoClientTLS: ClientTLSFiles asked of a cluster without Config.ClientTLS.
	ErrNoClientTLS = errors.New("cluster: client TLS is off")
)

// Config describes the cluster. The zero value is valid: New fills the
// defaults documented on each field.
type Config struct {
	// Members is the number of voting members, named "etcd-1".."etcd-N".
	// Default 3. Must be between 1 and 9.
	Members int
	// Dir is the root for the members' data dirs (Dir/etcd-1, ...). "" means
	// a fresh os.MkdirTemp dir that Close removes. A caller-given Dir is kept
	// by Close, but the member dirs this package created inside it are removed.
	Dir string
	// TickMs is the Raft heartbeat interval in ms. Default 10.
	TickMs uint
	// ElectionMs is the Raft election timeout in ms. Default 100 (50 flaps on
	// 2 cores). Must be at least 5*TickMs.
	ElectionMs uint
	// LogFile, when set, receives the members' zap logs (JSON, appended).
	// "" discards them. Nothing is printed to the terminal either way.
	LogFile string
	// Host is the IP every listener binds. Default "127.0.0.1".
	Host string
	// AutoCompactionRetention is the periodic auto-compaction retention
	// (etcd's --auto-compaction-retention with mode "periodic"). Default "1m".
	AutoCompactionRetention string
	// QuotaBackendBytes is etcd's backend quota; 0 keeps etcd's default (2 GiB).
	QuotaBackendBytes int64
	// SnapshotCount is the number of applied entries after which a member
	// snapshots and drops older Raft entries from memory (etcd's
	// --snapshot-count). Default 2000: etcd's 10,000 keeps up to 15,000
	// entries per member in memory, and three members share this process.
	SnapshotCount uint64
	// SnapshotCatchUpEntries is how many entries a member keeps after a
	// snapshot for a slow follower to catch up from (etcd's
	// --snapshot-catchup-entries); a follower further behind is sent the
	// snapshot. Default 1000 (etcd's: 5000). Must not exceed SnapshotCount.
	SnapshotCatchUpEntries uint64
	// UnsafeNoFsync disables fsync in the members (faster, unsafe on power loss).
	UnsafeNoFsync bool
	// ReadyTimeout bounds each Start attempt and each wait inside it when the
	// caller's ctx has no earlier deadline. Default 30s.
	ReadyTimeout time.Duration
	// Seed seeds the jitter of delays (SetDelay). Default 0, a fixed seed
	// like any other.
	Seed int64
	// ClientTLS serves every member's client URL over TLS (https://, etcd's
	// --cert-file/--key-file) with a server certificate for Host, signed by
	// a CA that Start makes for this cluster's clients (ClientTLSFiles).
	// Default false: plain http://.
	ClientTLS bool
	// ClientCertAuth (with ClientTLS) makes the members require a client
	// certificate signed by that CA (etcd's --client-cert-auth); Start makes
	// one for the clients (ClientTLSFiles). Default false.
	ClientCertAuth bool
}

const maxMembers = 9

func (cfg Config) withDefaults() Config {
	if cfg.Members == 0 {
		cfg.Members = 3
	}
	if cfg.TickMs == 0 {
		cfg.TickMs = 10
	}
	if cfg.ElectionMs == 0 {
		cfg.ElectionMs = 100
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.AutoCompactionRetention == "" {
		cfg.AutoCompactionRetention = "1m"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	if cfg.SnapshotCount == 0 {
		cfg.SnapshotCount = 2000
	}
	if cfg.SnapshotCatchUpEntries == 0 {
		cfg.SnapshotCatchUpEntries = min(1000, cfg.SnapshotCount)
	}
	return cfg
}

func (cfg Config) validate() error {
	switch {
	case cfg.Members < 1 || cfg.Members > maxMembers:
		return fmt.Errorf("%w: Members=%d, want 1..%d", ErrInvalidConfig, cfg.Members, maxMembers)
	case cfg.ElectionMs < 5*cfg.TickMs:
		return fmt.Errorf("%w: ElectionMs=%d must be at least 5*TickMs=%d", ErrInvalidConfig, cfg.ElectionMs, 5*cfg.TickMs)
	case net.ParseIP(cfg.Host) == nil:
		return fmt.Errorf("%w: Host=%q is not an IP address", ErrInvalidConfig, cfg.Host)
	case cfg.QuotaBackendBytes < 0:
		return fmt.Errorf("%w: QuotaBackendBytes=%d is negative", ErrInvalidConfig, cfg.QuotaBackendBytes)
	case cfg.ReadyTimeout < 0:
		return fmt.Errorf("%w: ReadyTimeout=%v is negative", ErrInvalidConfig, cfg.ReadyTimeout)
	case cfg.SnapshotCatchUpEntries > cfg.SnapshotCount:
		return fmt.Errorf("%w: SnapshotCatchUpEntries=%d exceeds SnapshotCount=%d", ErrInvalidConfig, cfg.SnapshotCatchUpEntries, cfg.SnapshotCount)
	case cfg.ClientCertAuth && !cfg.ClientTLS:
		return fmt.Errorf("%w: ClientCertAuth needs ClientTLS", ErrInvalidConfig)
	}
	return nil
}

// memberName is the name of the i-th member (0-based).
func memberName(i int) string { return component.Name(component.Etcd, i+1) }
