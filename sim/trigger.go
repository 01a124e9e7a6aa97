package sim

import (
	"sync"
	"time"
)

// triggers hold a client at a phase of its lock cycle until the fault that
// was waiting for that phase has been applied. Without this, a step such as
// "pause client-1 when it has read the resource" would race the client: by
// the time the pause lands, the client might already have written.
type triggers struct {
	mu    sync.Mutex
	armed []*trigger
	held  []*trigger // matched, holding their client until release
}

type trigger struct {
	holder, phase string // holder "" = any client
	hit           chan string
	release       chan struct{}
}

// maxHold bounds how long a client is held at a trigger, so that a fault
// that fails to apply never freezes a client for good.
const maxHold = 2 * time.Second

func (ts *triggers) arm(holder, phase string) *trigger {
	t := &trigger{holder: holder, phase: phase, hit: make(chan string, 1), release: make(chan struct{})}
	ts.mu.Lock()
	ts.armed = append(ts.armed, t)
	ts.mu.Unlock()
	return t
}

func (ts *triggers) disarm(t *trigger) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for i, a := range ts.armed {
		if a == t {
			ts.armed = append(ts.armed[:i], ts.armed[i+1:]...)
			return
		}
	}
}

// reached is called by a client entering a phase: if a trigger waits for it,
// the client reports itself and is held until the fault is applied.
func (ts *triggers) reached(client, phase string) {
	ts.mu.Lock()
	var t *trigger
	for i, a := range ts.armed {
		if (a.holder == "" || a.holder == client) && (a.phase == "" || a.phase == phase) {
			t = a
			ts.armed = append(ts.armed[:i], ts.armed[i+1:]...)
			ts.held = append(ts.held, t)
			break
		}
	}
	ts.mu.Unlock()
	if t == nil {
		return
	}
	t.hit <- client
	timer := time.NewTimer(maxHold)
	defer timer.Stop()
	select {
	case <-t.release:
	case <-timer.C:
	}
}

// releaseAll lets every held client go on; called after each applied fault.
func (ts *triggers) releaseAll() {
	ts.mu.Lock()
	held := ts.held
	ts.held = nil
	ts.mu.Unlock()
	for _, t := range held {
		close(t.release)
	}
}
