package clients

import (
	"context"
	"time"

	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/history"
)

// cycle is one turn of the loop: acquire, read, hold, check the lease,
// write, release. Every request is recorded with its outcome. It is long
// because it is the design's lock cycle, best read top to bottom.
func (c *Client) cycle(ctx context.Context) {
	cy, res, rec := c.cfg.Cycle, c.cfg.Resource, c.cfg.Recorder
	c.setPhase(component.PhaseAcquiring)
	defer c.setPhase(component.PhaseIdle)

	// Acquire.
	ttl, wait := cy.TTL.Seconds(), cy.Wait.Seconds()
	p := rec.Begin(c.cfg.Name, history.OpAcquire, res, history.Input{TTL: &ttl, Timeout: &wait})
	actx, cancel := context.WithTimeout(ctx, cy.Wait+cy.Grace)
	g, err := c.cfg.Lock.Acquire(actx, res, cy.TTL, cy.Wait)
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
	c.setPhase(component.PhaseAcquired)
	defer func() {
		c.mu.Lock()
		c.believes = false
		c.mu.Unlock()
	}()

	// Read the protected resource.
	if c.gate.Wait(ctx) != nil {
		return
	}
	rp := rec.Begin(c.cfg.Name, history.OpRead, res, history.Input{FencingToken: g.FencingToken})
	v, rerr := c.cfg.Protected.Read(res, g.FencingToken)
	if rerr != nil {
		rp.End(history.Fail, history.Output{Rejected: true})
	} else {
		rp.End(history.OK, history.Output{Value: &v})
		c.setPhase(component.PhaseAfterRead)
		if !sleepCtx(ctx, cy.Hold) || c.gate.Wait(ctx) != nil {
			return
		}
		// A careful client checks its lease against its own clock before
		// writing: a client that stalled past its lease (and whose clock
		// is right) gives up here. A pause between this check and the
		// write — the GC pause of Kleppmann's example — is not caught, and
		// neither is a clock that runs behind.
		if c.now().Before(g.ExpiresAt) {
			c.setPhase(component.PhaseBeforeWrite)
			if c.gate.Wait(ctx) != nil {
				return
			}
			nv := v + 1
			wp := rec.Begin(c.cfg.Name, history.OpWrite, res, history.Input{FencingToken: g.FencingToken, Value: &nv})
			if err := c.cfg.Protected.Write(res, g.FencingToken, nv); err != nil {
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
	c.setPhase(component.PhaseReleasing)
	c.mu.Lock()
	c.believes = false
	c.mu.Unlock()
	rlp := rec.Begin(c.cfg.Name, history.OpRelease, res, history.Input{LockToken: g.LockToken})
	rctx, cancel := context.WithTimeout(ctx, cy.Grace)
	err = c.cfg.Lock.Release(rctx, res, g.LockToken)
	cancel()
	if err != nil {
		rlp.End(OutcomeOf(err), ErrOutput(err))
	} else {
		rlp.End(history.OK, history.Output{})
	}
	c.setPhase(component.PhaseReleased)
}
