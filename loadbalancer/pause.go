package loadbalancer

import (
	"context"
	"sync"
	"sync/atomic"
)

// gate freezes goroutines at their next checkpoint, as SIGSTOP freezes a
// process: what is done stays done, nothing new happens until it opens.
type gate struct {
	on     atomic.Bool // closed, readable without the lock
	mu     sync.Mutex
	closed bool          // paused
	open   chan struct{} // closed on resume; nil while open
}

func (g *gate) pause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed, g.open = true, make(chan struct{})
		g.on.Store(true)
	}
}

func (g *gate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		g.closed = false
		g.on.Store(false)
		close(g.open)
		g.open = nil
	}
}

func (g *gate) paused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// check is wait for hot paths: nothing but an atomic load while open.
func (g *gate) check(ctx context.Context) error {
	if !g.on.Load() {
		return nil
	}
	return g.wait(ctx)
}

// wait returns at once when open, else when resumed or ctx ends (with
// ctx's error).
func (g *gate) wait(ctx context.Context) error {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	if ch == nil {
		return ctx.Err()
	}
	select {
	case <-ch:
		return ctx.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}
