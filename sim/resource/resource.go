package resource

import (
	"cmp"
	"errors"
	"slices"
	"sync"
)

// ErrStale is returned by the protected resource when fencing is on and a
// request carries a fencing token lower than the highest it has seen.
var ErrStale = errors.New("resource: stale fencing token")

// Store is the protected resource of the sandbox: one counter per
// resource id, the thing the lock is meant to protect. Clients read the
// counter, hold, and write it back incremented. When fencing is on, every
// read and write must carry a fencing token at least as high as the highest
// token the resource has seen for that key, and every accepted request
// raises that mark (Kleppmann's fencing token scheme).
//
// Store is safe for concurrent use; each request is atomic.
type Store struct {
	mu      sync.Mutex
	fencing bool
	keys    map[string]*counter
}

type counter struct {
	value    int64
	highest  int64
	rejected uint64
	writes   uint64
}

// State is a snapshot of one key of the protected resource.
type State struct {
	Name         string `json:"name"`
	Value        int64  `json:"value"`
	HighestToken int64  `json:"highestToken"`
	Rejected     uint64 `json:"rejected"`
	Writes       uint64 `json:"writes"`
}

// New returns an empty protected resource.
func New(fencing bool) *Store {
	return &Store{fencing: fencing, keys: map[string]*counter{}}
}

// SetFencing turns the fencing check on or off (the classroom toggle).
func (r *Store) SetFencing(on bool) {
	r.mu.Lock()
	r.fencing = on
	r.mu.Unlock()
}

// Fencing reports whether fencing tokens are checked.
func (r *Store) Fencing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fencing
}

func (r *Store) key(name string) *counter {
	c := r.keys[name]
	if c == nil {
		c = &counter{}
		r.keys[name] = c
	}
	return c
}

// admit applies the fencing rule: reject a token below the mark, else raise it.
func (r *Store) admit(c *counter, token int64) bool {
	if !r.fencing {
		return true
	}
	if token < c.highest {
		c.rejected++
		return false
	}
	c.highest = token
	return true
}

// Read returns the counter of key, or ErrStale.
func (r *Store) Read(key string, token int64) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.key(key)
	if !r.admit(c, token) {
		return 0, ErrStale
	}
	return c.value, nil
}

// Write sets the counter of key to value, or returns ErrStale.
func (r *Store) Write(key string, token, value int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.key(key)
	if !r.admit(c, token) {
		return ErrStale
	}
	c.value = value
	c.writes++
	return nil
}

// State returns a snapshot of every key, sorted by name.
func (r *Store) State() []State {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]State, 0, len(r.keys))
	for name, c := range r.keys {
		out = append(out, State{Name: name, Value: c.value, HighestToken: c.highest, Rejected: c.rejected, Writes: c.writes})
	}
	slices.SortFunc(out, func(a, b State) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
