package sim

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("sim: bad config")

// Config describes a whole sandbox. The zero value is a valid default
// sandbox: 3 etcd members with fast Raft timing, 3 lock servers behind a
// round-robin balancer, 3 clients on one resource, fencing on.
type Config struct {
	// Members is the number of embedded etcd members. Default 3.
	Members int
	// TickMs and ElectionMs are the Raft heartbeat and election timeouts.
	// Defaults 10 and 100 (fast); the classroom pace uses 100 and 1000.
	TickMs, ElectionMs uint
	// DataDir holds the members' data dirs; "" = a temporary dir removed on Close.
	DataDir string
	// EtcdLog is a file for etcd's own logs; "" discards them.
	EtcdLog string
	// Fsync makes etcd fsync its WAL (slower; off by default in the sandbox,
	// where every member shares one disk anyway).
	Fsync bool
	// ExternalEtcd, when set, runs the lock servers against these etcd client
	// URLs instead of embedded members (member faults are then unavailable).
	ExternalEtcd []string

	// LockServers is the number of lock servers. Default 3.
	LockServers int
	// Unsafe selects a deliberately broken lock server ("check-then-set"),
	// a negative control for the checker. "" = the real, safe lock server.
	Unsafe string
	// Auth turns API keys on: every simulated client gets its own random key,
	// and requests without a valid key get 401 (403 when the key does not
	// match the body's clientId).
	Auth bool
	// APIKeys are extra keys (key -> clientId) the lock servers accept, for
	// example from `locksim up --auth-file`. Setting any turns auth on.
	APIKeys map[string]string
	// RateLimit is each client's allowance in requests per second at each
	// lock server (0 = unlimited); over it a request gets 429.
	RateLimit float64
	// EtcdTimeout bounds every etcd call of a lock server. Default 2s.
	EtcdTimeout time.Duration

	// Policy is the balancer's policy: "round-robin" (default) or "least-connections".
	Policy string
	// BalancerListen is the balancer's address. Default "127.0.0.1:0".
	BalancerListen string
	// HealthInterval is the balancer's health check interval. Default 200ms.
	HealthInterval time.Duration

	// Clients is the number of simulated clients. Default 3.
	Clients int
	// Workload is what each client does.
	Workload Workload
	// Unfenced turns the protected resource's fencing check off (a teaching
	// switch: without fencing a paused client can overwrite a newer holder).
	Unfenced bool
	// Seed fixes the workload's random choices. Default 1.
	Seed int64
	// Pace is a label shown to viewers ("fast" or "classroom").
	Pace string
}

// Workload is the loop every simulated client runs: acquire (through the
// balancer) -> read the protected resource -> hold -> write it -> release ->
// think.
type Workload struct {
	// Resources the clients lock: client-N locks resource (N-1) mod
	// len(Resources). Default ["order:12345"].
	Resources []string
	// TTL of each lock. Default 2s (etcd rounds it up to whole seconds).
	TTL time.Duration
	// Wait is how long an acquire may block. Default 1s.
	Wait time.Duration
	// Hold is the time between reading and writing the resource. Default 20ms.
	Hold time.Duration
	// Think is the pause between cycles. Default 10ms.
	Think time.Duration
	// Cycles caps the cycles per client; 0 = until stopped.
	Cycles int
	// Disabled starts no clients (the sandbox only serves the API).
	Disabled bool
}

var resourceID = regexp.MustCompile(`^[A-Za-z0-9:._/-]{1,256}$`)

func (c *Config) setDefaults() {
	if c.Members == 0 {
		c.Members = 3
	}
	if c.TickMs == 0 {
		c.TickMs = 10
	}
	if c.ElectionMs == 0 {
		c.ElectionMs = 100
	}
	if c.LockServers == 0 {
		c.LockServers = 3
	}
	if c.EtcdTimeout == 0 {
		c.EtcdTimeout = 2 * time.Second
	}
	if c.Policy == "" {
		c.Policy = "round-robin"
	}
	if c.BalancerListen == "" {
		c.BalancerListen = "127.0.0.1:0"
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = 200 * time.Millisecond
	}
	if c.Clients == 0 {
		c.Clients = 3
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Pace == "" {
		c.Pace = "fast"
	}
	w := &c.Workload
	if len(w.Resources) == 0 {
		w.Resources = []string{"order:12345"}
	}
	if w.TTL == 0 {
		w.TTL = 2 * time.Second
	}
	if w.Wait == 0 {
		w.Wait = time.Second
	}
	if w.Hold == 0 {
		w.Hold = 20 * time.Millisecond
	}
	if w.Think == 0 {
		w.Think = 10 * time.Millisecond
	}
}

func (c *Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case len(c.ExternalEtcd) == 0 && c.Members != 3:
		return bad("members must be 3, got %d", c.Members)
	case c.ElectionMs < 5*c.TickMs:
		return bad("election timeout %dms must be at least 5 ticks of %dms", c.ElectionMs, c.TickMs)
	case c.LockServers < 1 || c.LockServers > 16:
		return bad("lock servers must be 1..16, got %d", c.LockServers)
	case c.Clients < 0 || c.Clients > 256:
		return bad("clients must be 0..256, got %d", c.Clients)
	case c.Policy != "round-robin" && c.Policy != "least-connections":
		return bad("policy must be round-robin or least-connections, got %q", c.Policy)
	case c.Unsafe != "" && c.Unsafe != "check-then-set":
		return bad("unsafe mode must be check-then-set, got %q", c.Unsafe)
	case c.Workload.TTL <= 0 || c.Workload.TTL > time.Hour:
		return bad("ttl must be in (0, 1h], got %s", c.Workload.TTL)
	case c.Workload.Wait < 0 || c.Workload.Wait > 300*time.Second:
		return bad("wait must be in [0, 300s], got %s", c.Workload.Wait)
	case c.Workload.Hold < 0 || c.Workload.Think < 0:
		return bad("hold and think must not be negative")
	}
	for _, r := range c.Workload.Resources {
		if !resourceID.MatchString(r) {
			return bad("resource id %q must be 1-256 bytes of [A-Za-z0-9:._/-]", r)
		}
	}
	return nil
}
