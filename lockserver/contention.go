package lockserver

import (
	"sync"
	"time"
)

// contentionMemory is how long a server remembers that a resource had
// waiters; contentionMax bounds how many resources it remembers.
const (
	contentionMemory = 2 * time.Second
	contentionMax    = 4096
)

// contention remembers which resources had blocked acquires lately, so that
// a release of one of them first reads the head of its queue (to hand the
// lock over) and a release of any other makes no read it does not need. It
// is a hint, never needed for correctness: a release that finds no head, or
// does not look, deletes the lock, and a queued head then takes it itself.
// It is pure (time is passed in) and safe for concurrent use.
type contention struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// note records that id had waiters at now.
func (c *contention) note(id string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil || len(c.seen) >= contentionMax {
		if _, ok := c.seen[id]; !ok {
			c.seen = map[string]time.Time{} // forget everything: only a hint
		}
	}
	c.seen[id] = now
}

// recent reports whether id had waiters within contentionMemory before now.
func (c *contention) recent(id string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.seen[id]
	return ok && now.Sub(t) < contentionMemory
}
