package sim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
)

// Client phases, as shown to viewers and matched by scenario triggers.
const (
	PhaseIdle        = "idle"
	PhaseAcquiring   = "acquiring"
	PhaseAcquired    = "acquired"
	PhaseAfterRead   = "after-read"
	PhaseBeforeWrite = "before-write"
	PhaseReleasing   = "releasing"
	PhaseReleased    = "released"
)

// client is one simulated application. Client-N always locks resource
// (N-1) mod len(resources), so contention per resource is fixed by the
// topology. It loops acquire -> read -> hold ->
// check its lease against its own clock -> write -> release -> think.
type client struct {
	name  string
	index int // client-N has index N-1 and locks resource (N-1) mod len(resources)
	sb    *Sandbox
	lc    *lockserver.Client
	gate  gate
	skew  atomic.Int64 // ns added to this client's clock
	tr    *http.Transport

	mu        sync.Mutex
	phase     string
	resource  string
	fence     int64
	believes  bool
	expiresAt time.Time
	ok, fail  uint64
	unknown   uint64
	cycles    uint64
	abandoned uint64 // cycles whose write was skipped because the lease looked expired
}

// ClientState is a snapshot of one simulated client.
type ClientState struct {
	Name         string        `json:"name"`
	Paused       bool          `json:"paused"`
	Phase        string        `json:"phase"`
	Resource     string        `json:"resource,omitempty"`
	FencingToken int64         `json:"fencingToken,omitempty"`
	Believes     bool          `json:"believes"`
	ExpiresAt    time.Time     `json:"expiresAt"`
	Skew         time.Duration `json:"skew"`
	OK           uint64        `json:"ok"`
	Fail         uint64        `json:"fail"`
	Unknown      uint64        `json:"unknown"`
	Cycles       uint64        `json:"cycles"`
	Abandoned    uint64        `json:"abandoned"` // writes skipped: the lease looked expired
}

func (sb *Sandbox) newClient(i int, baseURL string) *client {
	name := fmt.Sprintf("client-%d", i+1)
	tr := &http.Transport{
		DialContext:         sb.net.Dialer(name),
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	c := &client{
		name:  name,
		index: i,
		sb:    sb,
		tr:    tr,
		phase: PhaseIdle,
		lc: &lockserver.Client{
			BaseURL:  baseURL,
			HTTP:     &http.Client{Transport: tr},
			ClientID: name,
			APIKey:   sb.keyOf(name),
		},
	}
	return c
}

// clientNow is the client's own (possibly skewed) wall clock.
func (c *client) clientNow() time.Time {
	return time.Now().Add(time.Duration(c.skew.Load()))
}

func (c *client) setPhase(phase string) {
	c.mu.Lock()
	c.phase = phase
	c.mu.Unlock()
	c.sb.notifyChange()
	c.sb.triggers.reached(c.name, phase)
}

func (c *client) state() ClientState {
	c.mu.Lock()
	defer c.mu.Unlock()
	believes := c.believes && c.clientNow().Before(c.expiresAt)
	return ClientState{
		Name: c.name, Paused: c.gate.Paused(), Phase: c.phase, Resource: c.resource,
		FencingToken: c.fence, Believes: believes, ExpiresAt: c.expiresAt,
		Skew: time.Duration(c.skew.Load()), OK: c.ok, Fail: c.fail, Unknown: c.unknown, Cycles: c.cycles, Abandoned: c.abandoned,
	}
}

func (c *client) count(outcome history.Outcome) {
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

// run loops until ctx ends or the cycle cap is reached.
func (c *client) run(ctx context.Context) {
	w := c.sb.cfg.Workload
	for n := 0; w.Cycles == 0 || n < w.Cycles; n++ {
		if c.gate.Wait(ctx) != nil || c.sb.draining.Load() {
			return
		}
		c.cycle(ctx, w.Resources[c.index%len(w.Resources)])
		c.mu.Lock()
		c.cycles++
		c.mu.Unlock()
		if !sleepCtx(ctx, w.Think) {
			return
		}
	}
}

func (c *client) cycle(ctx context.Context, res string) {
	w := c.sb.cfg.Workload
	rec := c.sb.rec
	c.mu.Lock()
	c.resource = res
	c.mu.Unlock()
	c.setPhase(PhaseAcquiring)
	defer c.setPhase(PhaseIdle)

	// Acquire.
	ttl, wait := w.TTL.Seconds(), w.Wait.Seconds()
	p := rec.Begin(c.name, "acquire", res, history.Input{TTL: &ttl, Timeout: &wait})
	actx, cancel := context.WithTimeout(ctx, w.Wait+c.sb.cfg.EtcdTimeout+2*time.Second)
	g, err := c.lc.Acquire(actx, res, w.TTL, w.Wait)
	cancel()
	if err != nil {
		out := OutcomeOf(err)
		p.End(out, ErrOutput(err))
		c.count(out)
		return
	}
	gttl := g.TTL.Seconds()
	p.End(history.OK, history.Output{LockToken: g.LockToken, FencingToken: g.FencingToken, ExpiresAt: g.ExpiresAt.Format(time.RFC3339Nano), TTL: &gttl})
	c.count(history.OK)
	c.mu.Lock()
	c.fence, c.believes, c.expiresAt = g.FencingToken, true, g.ExpiresAt
	c.mu.Unlock()
	c.setPhase(PhaseAcquired)
	defer func() {
		c.mu.Lock()
		c.believes = false
		c.mu.Unlock()
	}()

	// Read the protected resource.
	if c.gate.Wait(ctx) != nil {
		return
	}
	rp := rec.Begin(c.name, "read", res, history.Input{FencingToken: g.FencingToken})
	v, rerr := c.sb.resource.Read(res, g.FencingToken)
	if rerr != nil {
		rp.End(history.Fail, history.Output{Rejected: true})
	} else {
		rp.End(history.OK, history.Output{Value: &v})
		c.setPhase(PhaseAfterRead)
		if !sleepCtx(ctx, w.Hold) || c.gate.Wait(ctx) != nil {
			return
		}
		// A careful client checks its lease against its own clock before
		// writing: a client that stalled past its lease (and whose clock
		// is right) gives up here. A pause between this check and the
		// write — the GC pause of Kleppmann's example — is not caught, and
		// neither is a clock that runs behind.
		if c.clientNow().Before(g.ExpiresAt) {
			c.setPhase(PhaseBeforeWrite)
			if c.gate.Wait(ctx) != nil {
				return
			}
			nv := v + 1
			wp := rec.Begin(c.name, "write", res, history.Input{FencingToken: g.FencingToken, Value: &nv})
			if err := c.sb.resource.Write(res, g.FencingToken, nv); err != nil {
				wp.End(history.Fail, history.Output{Rejected: true})
			} else {
				wp.End(history.OK, history.Output{})
			}
		} else {
			c.mu.Lock()
			c.abandoned++
			c.mu.Unlock()
		}
	}

	// Release.
	if c.gate.Wait(ctx) != nil {
		return
	}
	c.setPhase(PhaseReleasing)
	c.mu.Lock()
	c.believes = false
	c.mu.Unlock()
	rlp := rec.Begin(c.name, "release", res, history.Input{LockToken: g.LockToken})
	rctx, cancel := context.WithTimeout(ctx, c.sb.cfg.EtcdTimeout+2*time.Second)
	err = c.lc.Release(rctx, res, g.LockToken)
	cancel()
	if err != nil {
		rlp.End(OutcomeOf(err), ErrOutput(err))
	} else {
		rlp.End(history.OK, history.Output{})
	}
	c.setPhase(PhaseReleased)
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

// StartWorkload starts the simulated clients. They run until StopWorkload,
// Close, ctx ends, or they finish their cycles.
func (sb *Sandbox) StartWorkload(ctx context.Context) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.workload != nil || sb.closed || sb.cfg.Workload.Disabled {
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	sb.workload = cancel
	if sb.clients == nil {
		for i := range sb.cfg.Clients {
			sb.clients = append(sb.clients, sb.newClient(i, "http://"+sb.lbAddr))
		}
	}
	for _, c := range sb.clients {
		sb.workerWG.Add(1)
		go func() {
			defer sb.workerWG.Done()
			c.run(wctx)
		}()
	}
}

// WaitWorkload blocks until every client has finished its cycles or ctx ends.
func (sb *Sandbox) WaitWorkload(ctx context.Context) error {
	done := make(chan struct{})
	go func() { sb.workerWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DrainWorkload asks every client to stop after the cycle it is in (so no
// operation is cut short and left with an unknown outcome) and waits for
// them until ctx ends; then it stops them the hard way.
func (sb *Sandbox) DrainWorkload(ctx context.Context) {
	sb.draining.Store(true)
	_ = sb.WaitWorkload(ctx)
	sb.StopWorkload()
}

// StopWorkload stops the clients and waits for them. Paused clients are
// resumed first so that nothing stays frozen.
func (sb *Sandbox) StopWorkload() {
	sb.mu.Lock()
	cancel := sb.workload
	sb.workload = nil
	clients := sb.clients
	sb.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	for _, c := range clients {
		c.gate.Resume()
	}
	sb.workerWG.Wait()
	for _, c := range clients {
		c.tr.CloseIdleConnections()
	}
}

// Clients returns a snapshot of every simulated client.
func (sb *Sandbox) Clients() []ClientState {
	sb.mu.Lock()
	clients := sb.clients
	sb.mu.Unlock()
	out := make([]ClientState, len(clients))
	for i, c := range clients {
		out[i] = c.state()
	}
	return out
}

func (sb *Sandbox) clientByName(name string) (*client, error) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	for _, c := range sb.clients {
		if c.name == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownNode, name)
}

func (sb *Sandbox) notifyChange() {
	sb.mu.Lock()
	close(sb.changed)
	sb.changed = make(chan struct{})
	sb.mu.Unlock()
}
