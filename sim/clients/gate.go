package clients

import (
	"context"
	"sync"
)

// gate freezes a goroutine at its next checkpoint, the way SIGSTOP or a long
// GC pause freezes a process: work already done stays done, nothing new
// happens until Resume.
type gate struct {
	mu     sync.Mutex
	paused bool
	resume chan struct{}
}

func (g *gate) Pause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.paused {
		g.paused = true
		g.resume = make(chan struct{})
	}
}

func (g *gate) Resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused {
		g.paused = false
		close(g.resume)
	}
}

func (g *gate) Paused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused
}

// Wait returns at once when not paused, else when resumed or ctx ends.
func (g *gate) Wait(ctx context.Context) error {
	g.mu.Lock()
	paused, ch := g.paused, g.resume
	g.mu.Unlock()
	if !paused {
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
