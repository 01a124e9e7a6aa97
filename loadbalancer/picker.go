package loadbalancer

import (
	"fmt"
	"sync/atomic"
)

// Policy names accepted by [Config].Policy.
const (
	PolicyRoundRobin       = "round-robin"
	PolicyLeastConnections = "least-connections"
)

// BackendView is what a [Picker] sees of one backend for one decision.
type BackendView struct {
	// Eligible reports whether the backend may take this request: it is up
	// and has not already been tried for it.
	Eligible bool
	// InFlight is the number of requests the balancer has outstanding on it.
	InFlight int64
}

// A Picker chooses the backend for one request. Pick returns the index of
// an eligible backend, or false when none is eligible. Implementations are
// safe for concurrent use and never block.
type Picker interface {
	Pick(backends []BackendView) (int, bool)
}

// NewPicker returns the picker for a policy name ("" means round-robin).
func NewPicker(policy string) (Picker, error) {
	switch policy {
	case "", PolicyRoundRobin:
		return &RoundRobin{}, nil
	case PolicyLeastConnections:
		return &LeastConnections{}, nil
	default:
		return nil, fmt.Errorf("%w: unknown policy %q (want %q or %q)",
			ErrInvalidConfig, policy, PolicyRoundRobin, PolicyLeastConnections)
	}
}

// RoundRobin hands requests to eligible backends in turn. After choosing
// backend i it continues after i, so a backend that is skipped does not
// double the share of its successor. The zero value is ready to use.
type RoundRobin struct {
	next atomic.Uint64 // absolute position of the next candidate
}

// Pick implements [Picker].
func (p *RoundRobin) Pick(backends []BackendView) (int, bool) {
	n := uint64(len(backends))
	if n == 0 {
		return 0, false
	}
	for {
		start := p.next.Load()
		off, ok := firstEligible(backends, start)
		if !ok {
			return 0, false
		}
		if p.next.CompareAndSwap(start, start+off+1) {
			return int((start + off) % n), true
		}
		// Another request moved the cursor meanwhile: decide again.
	}
}

// LeastConnections hands a request to the eligible backend with the fewest
// requests in flight. Ties are broken round-robin, so that idle backends
// share the load evenly. The zero value is ready to use.
type LeastConnections struct {
	next atomic.Uint64 // where the scan for ties starts
}

// Pick implements [Picker].
func (p *LeastConnections) Pick(backends []BackendView) (int, bool) {
	n := uint64(len(backends))
	if n == 0 {
		return 0, false
	}
	start := p.next.Load()
	best, found := uint64(0), false
	for off := range n {
		i := (start + off) % n
		b := backends[i]
		if !b.Eligible {
			continue
		}
		if !found || b.InFlight < backends[best].InFlight {
			best, found = i, true
		}
	}
	if !found {
		return 0, false
	}
	// Continue the tie scan after the chosen backend. A lost race only
	// means a slightly less even spread, never a wrong choice.
	p.next.CompareAndSwap(start, start+(best+n-start%n)%n+1)
	return int(best), true
}

// firstEligible returns the offset from start (modulo len) of the first
// eligible backend.
func firstEligible(backends []BackendView, start uint64) (uint64, bool) {
	n := uint64(len(backends))
	for off := range n {
		if backends[(start+off)%n].Eligible {
			return off, true
		}
	}
	return 0, false
}
