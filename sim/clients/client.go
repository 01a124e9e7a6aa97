package clients

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
	"github.com/locksim/locksim/sim/resource"
)

// Cycle is what a client does in each turn of its loop.
type Cycle struct {
	TTL   time.Duration // the lease each acquire asks for
	Wait  time.Duration // how long an acquire may block
	Hold  time.Duration // between reading and writing the protected resource
	Think time.Duration // between cycles
	// Cycles caps the cycles; 0 = until Run's ctx ends.
	Cycles int
	// Grace is added to every request's timeout beyond Wait, so that the
	// lock service can answer (its etcd timeout and some). Default 4s.
	Grace time.Duration
}

// Config is one simulated client.
type Config struct {
	Name      string             // client-N
	Resource  string             // the resource id it locks, every cycle
	Lock      *lockserver.Client // the lock service (through the balancer)
	Protected *resource.Store    // what the lock protects
	Recorder  *history.Recorder  // every operation goes here
	Cycle     Cycle
	// OnPhase, optional, is called as the client enters each phase (one of
	// component's Phase constants), on the client's goroutine: a fault
	// waiting for the phase may hold the client there until it is applied.
	OnPhase func(client, phase string)
	// Stopping, optional, is asked before each cycle; true ends Run (a
	// drain: no cycle is cut short).
	Stopping func() bool
}

// Client is one simulated application.
type Client struct {
	cfg  Config
	gate gate
	skew atomic.Int64 // ns added to this client's clock

	mu        sync.Mutex
	phase     string
	fence     int64
	believes  bool
	expiresAt time.Time
	ok, fail  uint64
	unknown   uint64
	cycles    uint64
	abandoned uint64 // cycles whose write was skipped because the lease looked expired
}

// State is a snapshot of one simulated client.
type State struct {
	Name         string        `json:"name"`
	Paused       bool          `json:"paused"`
	Phase        string        `json:"phase"`
	Resource     string        `json:"resource,omitempty"`
	FencingToken int64         `json:"fencingToken,omitempty"`
	Believes     bool          `json:"believes"` // it believes it holds the lock (its lease has not ended by its own clock)
	ExpiresAt    time.Time     `json:"expiresAt"`
	Skew         time.Duration `json:"skew"`
	OK           uint64        `json:"ok"`
	Fail         uint64        `json:"fail"`
	Unknown      uint64        `json:"unknown"`
	Cycles       uint64        `json:"cycles"`
	Abandoned    uint64        `json:"abandoned"` // writes skipped: the lease looked expired
}

// New returns a client that has not started; call Run.
func New(cfg Config) *Client {
	if cfg.Cycle.Grace <= 0 {
		cfg.Cycle.Grace = 4 * time.Second
	}
	return &Client{cfg: cfg, phase: component.PhaseIdle}
}

// Name is the client's name.
func (c *Client) Name() string { return c.cfg.Name }

// Pause freezes the client at its next checkpoint.
func (c *Client) Pause() { c.gate.Pause() }

// Resume undoes Pause.
func (c *Client) Resume() { c.gate.Resume() }

// SetSkew shifts the client's wall clock by d (0 restores it).
func (c *Client) SetSkew(d time.Duration) { c.skew.Store(int64(d)) }

// now is the client's own (possibly skewed) wall clock.
func (c *Client) now() time.Time {
	return time.Now().Add(time.Duration(c.skew.Load()))
}

func (c *Client) setPhase(phase string) {
	c.mu.Lock()
	c.phase = phase
	c.mu.Unlock()
	if c.cfg.OnPhase != nil {
		c.cfg.OnPhase(c.cfg.Name, phase)
	}
}

// State returns a snapshot of the client.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	believes := c.believes && c.now().Before(c.expiresAt)
	return State{
		Name: c.cfg.Name, Paused: c.gate.Paused(), Phase: c.phase, Resource: c.cfg.Resource,
		FencingToken: c.fence, Believes: believes, ExpiresAt: c.expiresAt,
		Skew: time.Duration(c.skew.Load()), OK: c.ok, Fail: c.fail, Unknown: c.unknown, Cycles: c.cycles, Abandoned: c.abandoned,
	}
}

func (c *Client) count(outcome history.Outcome) {
	c.mu.Lock()
	switch outcome {
	case history.OK:
		c.ok++
	case history.Fail:
		c.fail++
	default:
		c.unknown++
	}
	c.mu.Unlock()
}

// Run loops until ctx ends, Stopping says so or the cycle cap is reached.
func (c *Client) Run(ctx context.Context) {
	cy := c.cfg.Cycle
	for n := 0; cy.Cycles == 0 || n < cy.Cycles; n++ {
		if c.gate.Wait(ctx) != nil || (c.cfg.Stopping != nil && c.cfg.Stopping()) {
			return
		}
		c.cycle(ctx)
		c.mu.Lock()
		c.cycles++
		c.mu.Unlock()
		if !sleepCtx(ctx, cy.Think) {
			return
		}
	}
}

// OutcomeOf maps a lock client error to a history outcome: only errors that
// prove the request had no effect are failures; everything else (a timeout,
// a dropped connection, outcome_unknown) is unknown, never coerced.
func OutcomeOf(err error) history.Outcome {
	switch {
	case errors.Is(err, lockserver.ErrBusy), errors.Is(err, lockserver.ErrNotHeld),
		errors.Is(err, lockserver.ErrUnavailable), errors.Is(err, lockserver.ErrBadRequest):
		return history.Fail
	default:
		return history.Unknown
	}
}

// ErrOutput records a lock client error as a history output (message and code).
func ErrOutput(err error) history.Output {
	out := history.Output{Error: err.Error()}
	var e *lockserver.Error
	if errors.As(err, &e) {
		out.Code = e.Code
	}
	return out
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
