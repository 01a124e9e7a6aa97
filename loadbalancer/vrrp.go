package loadbalancer

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The VRRP election of a redundant group of balancers (RFC 5798, version 3,
// as keepalived runs it), as a pure state machine: no goroutines, no
// sockets, time passed in. [Node] is its I/O shell.

// State is a VRRP router's state.
type State uint8

// States of a [Router].
const (
	StateInit   State = iota // not started (or stopped)
	StateBackup              // listening for the master's adverts
	StateMaster              // advertising, and owning the virtual address
)

func (s State) String() string {
	switch s {
	case StateBackup:
		return "backup"
	case StateMaster:
		return "master"
	}
	return "init"
}

// MarshalText writes the state as its name ("master").
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Defaults of the VRRP election.
const (
	// DefaultAdvertInterval is the advert interval of a redundant pair
	// outside the sandbox's paces: a backup takes over 3 intervals plus the
	// skew after the master's last advert, 0.72 s at priority 100, so that
	// failover stays under a second as the design promises. keepalived's
	// own default (advert_int 1) takes 3.6 s.
	DefaultAdvertInterval = 200 * time.Millisecond
	// FastAdvertInterval halves it: a takeover 0.36 s after the master's
	// last advert. The sandbox's fast pace uses it.
	FastAdvertInterval = 100 * time.Millisecond
	// KeepalivedAdvertInterval is keepalived's default (advert_int 1): a
	// takeover about 3.6 s after the master's last advert, slow enough to
	// watch. The sandbox's classroom pace uses it.
	KeepalivedAdvertInterval = time.Second
	// DefaultPriority is a backup's priority, as keepalived's.
	DefaultPriority = 100
	// OwnerPriority is the priority of the virtual address's owner: it
	// becomes master at once when it starts, without waiting for adverts.
	OwnerPriority = 255
)

// ErrInvalidVRRP wraps every validation error of a VRRP configuration.
var ErrInvalidVRRP = errors.New("loadbalancer: invalid VRRP config")

// RouterConfig configures one member of a VRRP group.
type RouterConfig struct {
	// Name identifies the router in its adverts. Two routers of equal
	// priority break the tie by name, as VRRP does by primary IP address:
	// the greater wins, comparing names by length first so that
	// "balancer-10" beats "balancer-9". Required.
	Name string
	// Priority is 1..255; the highest priority present is master. 255 is
	// the address owner's (master at once on start). Default 100.
	Priority int
	// Interval is how often a master advertises. Default
	// DefaultAdvertInterval.
	Interval time.Duration
	// NoPreempt keeps a backup from taking over from a master of lower
	// priority that it hears (keepalived's nopreempt). By default (preempt,
	// as the RFC) a backup ignores the adverts of a lower-priority master,
	// times out and takes over.
	NoPreempt bool
}

func (c *RouterConfig) fill() error {
	if c.Priority == 0 {
		c.Priority = DefaultPriority
	}
	if c.Interval == 0 {
		c.Interval = DefaultAdvertInterval
	}
	switch {
	case c.Name == "":
		return fmt.Errorf("%w: a router needs a name", ErrInvalidVRRP)
	case c.Priority < 1 || c.Priority > OwnerPriority:
		return fmt.Errorf("%w: priority must be 1..255, got %d", ErrInvalidVRRP, c.Priority)
	case c.Interval < 0:
		return fmt.Errorf("%w: negative advert interval %v", ErrInvalidVRRP, c.Interval)
	}
	return nil
}

// Advert is one VRRP advertisement: a master's "I am here, at this
// priority, every Interval".
type Advert struct {
	From     string        `json:"from"`
	Priority int           `json:"priority"`
	Interval time.Duration `json:"interval"`
}

// Output is what the shell must do after an input.
type Output struct {
	// Advertise: send an advert (Router.Advert) to every peer now. Only a
	// master advertises.
	Advertise bool
	// Transition is set when the state changed.
	Transition *Transition
}

// Transition is one change of state, with the reason in words.
type Transition struct {
	From, To State
	Reason   string
}

// Router is one member of a VRRP group: a balancer that is master (it
// advertises every Interval and owns the virtual address) or backup (it
// takes over when it has heard no advert from a master it accepts for the
// master-down interval). It is not safe for concurrent use; its shell calls
// it from one goroutine.
type Router struct {
	cfg   RouterConfig
	state State

	masterInterval time.Duration // Master_Adver_Interval: learned from the master
	advertAt       time.Time     // master: when the next advert is due
	masterDownAt   time.Time     // backup: when it takes over
	master         string        // who it takes for master ("" = nobody heard yet)
}

// NewRouter validates cfg, fills its defaults and returns a router in
// StateInit.
func NewRouter(cfg RouterConfig) (*Router, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	return &Router{cfg: cfg, masterInterval: cfg.Interval}, nil
}

// Config returns the router's configuration with defaults filled in.
func (r *Router) Config() RouterConfig { return r.cfg }

// State is the current state.
func (r *Router) State() State { return r.state }

// Master is who the router takes for master: itself when master, the
// sender of the last accepted advert when backup, "" before it heard one.
func (r *Router) Master() string { return r.master }

// SkewTime is (256 - Priority) / 256 of the master's advert interval: the
// lower the priority, the longer a backup waits, so the best backup wins.
func (r *Router) SkewTime() time.Duration {
	return time.Duration(256-r.cfg.Priority) * r.masterInterval / 256
}

// MasterDownInterval is how long a backup waits without an advert before it
// takes over: 3 master advert intervals plus the skew.
func (r *Router) MasterDownInterval() time.Duration { return 3*r.masterInterval + r.SkewTime() }

// Advert is the advert this router sends.
func (r *Router) Advert() Advert {
	return Advert{From: r.cfg.Name, Priority: r.cfg.Priority, Interval: r.cfg.Interval}
}

// Deadline is when Tick next has something to do: the next advert of a
// master, the takeover of a backup; zero in StateInit.
func (r *Router) Deadline() time.Time {
	switch r.state {
	case StateMaster:
		return r.advertAt
	case StateBackup:
		return r.masterDownAt
	}
	return time.Time{}
}

// Start leaves StateInit: the owner (priority 255) becomes master at once;
// every other router becomes backup and waits the master-down interval for
// an advert.
func (r *Router) Start(now time.Time) Output {
	if r.state != StateInit {
		return Output{}
	}
	if r.cfg.Priority == OwnerPriority {
		return r.becomeMaster(now, "priority 255: the owner of the virtual address is master at once")
	}
	r.masterInterval = r.cfg.Interval
	r.masterDownAt = now.Add(r.MasterDownInterval())
	return r.to(StateBackup, fmt.Sprintf("started; waits %v for a master's advert", r.MasterDownInterval().Round(time.Millisecond)))
}

// Stop returns to StateInit without a word to the others, as a crash does:
// they notice only when the adverts stop.
func (r *Router) Stop() Output {
	if r.state == StateInit {
		return Output{}
	}
	r.master = ""
	return r.to(StateInit, "stopped")
}

// Tick fires the timer that is due at now, if any: a master advertises
// (once, however late), a backup whose master-down timer expired becomes
// master.
func (r *Router) Tick(now time.Time) Output {
	switch {
	case r.state == StateMaster && !now.Before(r.advertAt):
		r.advertAt = now.Add(r.cfg.Interval)
		return Output{Advertise: true}
	case r.state == StateBackup && !now.Before(r.masterDownAt):
		why := "no master heard since start for " + r.MasterDownInterval().Round(time.Millisecond).String()
		if r.master != "" {
			why = fmt.Sprintf("no advert from %s for %v (3 x %v + skew %v)", r.master,
				r.MasterDownInterval().Round(time.Millisecond), r.masterInterval, r.SkewTime().Round(time.Millisecond))
		}
		return r.becomeMaster(now, why)
	}
	return Output{}
}

// Step handles an advert received at now.
func (r *Router) Step(now time.Time, a Advert) Output {
	if a.From == r.cfg.Name || a.Priority < 1 || a.Priority > OwnerPriority || a.Interval <= 0 {
		return Output{} // our own, or malformed: discarded
	}
	switch r.state {
	case StateBackup:
		if !r.cfg.NoPreempt && a.Priority < r.cfg.Priority {
			// Preempt: a lower-priority master is not accepted; the
			// master-down timer runs out and this router takes over.
			return Output{}
		}
		r.masterInterval = a.Interval
		r.masterDownAt = now.Add(r.MasterDownInterval())
		r.master = a.From
	case StateMaster:
		if !r.outranks(a) {
			return Output{} // a lower master: discarded (it will hear us and yield)
		}
		r.masterInterval = a.Interval
		r.masterDownAt = now.Add(r.MasterDownInterval())
		r.master = a.From
		why := fmt.Sprintf("heard %s at priority %d > %d", a.From, a.Priority, r.cfg.Priority)
		if a.Priority == r.cfg.Priority {
			why = fmt.Sprintf("heard %s at the same priority %d, and %s > %s", a.From, a.Priority, a.From, r.cfg.Name)
		}
		return r.to(StateBackup, why)
	}
	return Output{}
}

// outranks reports whether an advert's sender beats this router: a higher
// priority, or the same priority and a greater name.
func (r *Router) outranks(a Advert) bool {
	if a.Priority != r.cfg.Priority {
		return a.Priority > r.cfg.Priority
	}
	return CompareNames(a.From, r.cfg.Name) > 0
}

// CompareNames orders router names the way VRRP orders addresses when
// priorities tie: by length, then bytewise, so that "balancer-10" comes
// after "balancer-9".
func CompareNames(a, b string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func (r *Router) becomeMaster(now time.Time, why string) Output {
	r.advertAt = now.Add(r.cfg.Interval)
	r.master = r.cfg.Name
	out := r.to(StateMaster, why)
	out.Advertise = true
	return out
}

func (r *Router) to(s State, why string) Output {
	t := &Transition{From: r.state, To: s, Reason: why}
	r.state = s
	return Output{Transition: t}
}
