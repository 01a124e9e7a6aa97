package sim

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/locksim/locksim/loadbalancer"
	"github.com/locksim/locksim/scenarios"
	"github.com/locksim/locksim/sim/external"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("sim: bad config")

// Config describes a whole sandbox. The zero value is a valid default
// sandbox: 3 etcd members with fast Raft timing, 3 lock servers behind one
// round-robin balancer, 3 clients on one resource, fencing on. The defaults
// are a scenario file's (package scenarios), so that `locksim up` and a
// scenario without a workload block run the same sandbox.
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
	// LockServerCmd runs every lock server as its own process, from this
	// command line, instead of locksim's own in this process: any program
	// that serves the lock API and talks to etcd (package external: the
	// placeholders {listen}, {name} and {etcd}). Each reaches each etcd
	// member through a proxy of its own, so that cuts and delays hit its
	// real traffic; a crash is SIGKILL, a pause SIGSTOP.
	LockServerCmd string
	// LockServerFunc builds every lock server in this process from the
	// caller's own code instead of locksim's (the seam of a `go test`
	// proof): see LockServerFunc.
	LockServerFunc LockServerFunc
	// LogDir receives the standard output and error of LockServerCmd's
	// processes (NAME.stdout, NAME.stderr). "" = a temporary dir removed on
	// Close.
	LogDir string
	// ReadyTimeout bounds how long a lock server of LockServerCmd or
	// LockServerFunc may take at Start to answer GET /health with 200.
	// Default 20s.
	ReadyTimeout time.Duration
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
	// BalancerMode is every balancer's mode: "http" (default; per-request
	// balancing, answers of its own such as 502 outcome_unknown) or "tcp"
	// (HAProxy's mode tcp: each client connection goes to one lock server,
	// its bytes copied unparsed; see loadbalancer's tcp.go). In tcp mode the
	// balancers' in-flight and request counts, and the lock servers' in the
	// State, count connections.
	BalancerMode string
	// Balancers is the number of balancers, 1..8. Default 1: one balancer,
	// named "balancer", listening on BalancerListen. Two or more
	// (balancer-1..N, balancer-i at VRRP priority 100 + 10*(N-i)) elect a
	// master by VRRP and share a virtual address on BalancerListen, which
	// the clients use.
	Balancers int
	// AdvertInterval is the VRRP advert interval of two or more balancers.
	// Default: the pace's, FastAdvertInterval or ClassroomAdvertInterval.
	AdvertInterval time.Duration
	// NoPreempt keeps a backup balancer of higher priority from taking over
	// from a lower master (keepalived's nopreempt). Default: preempt.
	NoPreempt bool
	// BalancerListen is the entry point's address: the balancer's, or the
	// virtual address of several. Default "127.0.0.1:0".
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
	// HistoryKeep bounds the operations the recorder keeps in memory to
	// about the most recent HistoryKeep (0 = all): a long session's memory
	// stays flat. The live view and its checker see what is kept.
	HistoryKeep int
	// StreamHistory streams every operation to a file as it ends, and the
	// Observer's record of etcd (grants, deletions, release receipts) to
	// another, so that History and EtcdRecord return the whole of each even
	// with HistoryKeep and EtcdRecordRetain set.
	StreamHistory bool
	// EtcdRecordRetain bounds how long the Observer remembers grants,
	// deletions and release receipts in memory (0 = all). Without
	// StreamHistory, unknown outcomes older than that are then left unknown.
	EtcdRecordRetain time.Duration
	// Pace is PaceFast (default) or PaceClassroom: slow Raft timing (100 ms
	// ticks, 1 s elections), and a workload of at least a 10 s TTL, a 5 s
	// wait, a 2 s hold and a 1 s think, so that a room can follow each step.
	Pace string
}

// Custom reports whether the lock servers are not locksim's own: a
// LockServerCmd or a LockServerFunc.
func (c Config) Custom() bool { return c.LockServerCmd != "" || c.LockServerFunc != nil }

// customName names the custom lock server in messages.
func (c Config) customName() string {
	if c.LockServerCmd != "" {
		return fmt.Sprintf("the lock server command %q", c.LockServerCmd)
	}
	return "a lock server function"
}

// RecentOps is how many recent operations a long session keeps in memory
// (Config.HistoryKeep of `locksim up` and of `locksim run`): at the
// sandbox's pace, minutes of history for the live view and its checker.
const RecentOps = 20000

// Paces.
const (
	PaceFast      = "fast"
	PaceClassroom = "classroom"
)

// VRRP advert intervals of the paces. A backup takes over 3 intervals plus
// a skew of up to one after the master's last advert: about 0.36 s at the
// fast pace, well under a second; about 3.6 s at the classroom pace, long
// enough to watch.
const (
	FastAdvertInterval      = loadbalancer.FastAdvertInterval
	ClassroomAdvertInterval = loadbalancer.KeepalivedAdvertInterval
)

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
	// (The workload's defaults are a scenario file's: package scenarios.)
	// Hold is the time between reading and writing the resource. Default
	// 100ms, as in a scenario file.
	Hold time.Duration
	// Think is the pause between cycles. Default 20ms, as in a scenario file.
	Think time.Duration
	// Cycles caps the cycles per client; 0 = until stopped.
	Cycles int
	// Disabled starts no clients (the sandbox only serves the API).
	Disabled bool
}

var resourceID = regexp.MustCompile(`^[A-Za-z0-9:._/-]{1,256}$`)

// Defaults returns the zero Config with every default filled in: what
// `locksim up` starts without flags.
func Defaults() Config {
	var c Config
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Pace == "" {
		c.Pace = PaceFast
	}
	if c.Pace == PaceClassroom {
		c.TickMs, c.ElectionMs = max(c.TickMs, 100), max(c.ElectionMs, 1000)
	}
	if c.Members == 0 {
		c.Members = scenarios.DefaultEtcd
	}
	if c.TickMs == 0 {
		c.TickMs = scenarios.DefaultTickMs
	}
	if c.ElectionMs == 0 {
		c.ElectionMs = scenarios.DefaultElectionMs
	}
	if c.LockServers == 0 {
		c.LockServers = scenarios.DefaultLockServers
	}
	if c.Balancers == 0 {
		c.Balancers = scenarios.DefaultBalancers
	}
	if c.EtcdTimeout == 0 {
		c.EtcdTimeout = 2 * time.Second
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 20 * time.Second
	}
	if c.Policy == "" {
		c.Policy = scenarios.DefaultBalancer
	}
	if c.BalancerMode == "" {
		c.BalancerMode = loadbalancer.ModeHTTP
	}
	if c.BalancerListen == "" {
		c.BalancerListen = "127.0.0.1:0"
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = 200 * time.Millisecond
	}
	if c.Clients == 0 && !c.Workload.Disabled {
		c.Clients = scenarios.DefaultClients
	}
	if c.Seed == 0 {
		c.Seed = scenarios.DefaultSeed
	}
	w := &c.Workload
	if len(w.Resources) == 0 {
		w.Resources = []string{scenarios.DefaultResource}
	}
	if w.TTL == 0 {
		w.TTL = scenarios.DefaultTTL
	}
	if w.Wait == 0 {
		w.Wait = scenarios.DefaultWait
	}
	if w.Hold == 0 {
		w.Hold = scenarios.DefaultHold
	}
	if w.Think == 0 {
		w.Think = scenarios.DefaultThink
	}
	if c.Pace == PaceClassroom {
		w.TTL = max(w.TTL, 10*time.Second)
		w.Wait = max(w.Wait, 5*time.Second)
		w.Hold = max(w.Hold, 2*time.Second)
		w.Think = max(w.Think, time.Second)
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
	case c.Balancers < 1 || c.Balancers > scenarios.MaxBalancers:
		return bad("balancers must be 1..%d, got %d", scenarios.MaxBalancers, c.Balancers)
	case c.AdvertInterval < 0:
		return bad("advert interval must not be negative, got %s", c.AdvertInterval)
	case c.Clients < 0 || c.Clients > 256:
		return bad("clients must be 0..256, got %d", c.Clients)
	case c.Policy != scenarios.BalancerRoundRobin && c.Policy != scenarios.BalancerLeastConnections:
		return bad("policy must be round-robin or least-connections, got %q", c.Policy)
	case c.BalancerMode != loadbalancer.ModeHTTP && c.BalancerMode != loadbalancer.ModeTCP:
		return bad("balancer mode must be http or tcp, got %q", c.BalancerMode)
	case c.Unsafe != "" && c.Unsafe != scenarios.UnsafeCheckThenSet:
		return bad("unsafe mode must be check-then-set, got %q", c.Unsafe)
	case c.LockServerCmd != "" && c.LockServerFunc != nil:
		return bad("give a lock server command or a lock server function, not both")
	case c.Custom() && c.Unsafe != "":
		return bad("unsafe mode %q is a switch of locksim's own lock server, not of %s", c.Unsafe, c.customName())
	case c.Custom() && (c.Auth || len(c.APIKeys) > 0 || c.RateLimit > 0):
		return bad("API keys and rate limits are switches of locksim's own lock server, not of %s", c.customName())
	case c.ReadyTimeout < 0:
		return bad("ready timeout must not be negative, got %s", c.ReadyTimeout)
	case c.EtcdRecordRetain < 0:
		return bad("etcd record retain must not be negative, got %s", c.EtcdRecordRetain)
	case c.HistoryKeep < 0:
		return bad("history keep must not be negative, got %d", c.HistoryKeep)
	case c.Pace != PaceFast && c.Pace != PaceClassroom:
		return bad("pace must be fast or classroom, got %q", c.Pace)
	case c.Workload.TTL <= 0 || c.Workload.TTL > time.Hour:
		return bad("ttl must be in (0, 1h], got %s", c.Workload.TTL)
	case c.Workload.Wait < 0 || c.Workload.Wait > 300*time.Second:
		return bad("wait must be in [0, 300s], got %s", c.Workload.Wait)
	case c.Workload.Hold < 0 || c.Workload.Think < 0:
		return bad("hold and think must not be negative")
	}
	if c.LockServerCmd != "" {
		if err := external.CheckCommand(c.LockServerCmd); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	for _, r := range c.Workload.Resources {
		if !resourceID.MatchString(r) {
			return bad("resource id %q must be 1-256 bytes of [A-Za-z0-9:._/-]", r)
		}
	}
	return nil
}
