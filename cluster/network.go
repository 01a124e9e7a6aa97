package cluster

import (
	"math/rand/v2"
	"sync"
	"time"
)

// linkDelay is the delay set on one directed link.
type linkDelay struct {
	Latency, Jitter time.Duration
}

// network is the state of every directed link between the members, shared by
// all peer proxies: whether it is cut, its delay, and the flows that lost
// bytes to a cut (they are aborted when the link is mended). It is the pure
// core of the fault injection: it decides the fate of bytes, the proxies
// only carry them.
type network struct {
	mu    sync.Mutex
	cut   linkMatrix
	delay [][]linkDelay
	lost  [][]map[*flow]struct{}
	rng   *rand.Rand
}

func newNetwork(n int, seed uint64) *network {
	nw := &network{
		cut:   newLinkMatrix(n),
		delay: make([][]linkDelay, n),
		lost:  make([][]map[*flow]struct{}, n),
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	for i := range n {
		nw.delay[i] = make([]linkDelay, n)
		nw.lost[i] = make([]map[*flow]struct{}, n)
		for j := range n {
			nw.lost[i][j] = map[*flow]struct{}{}
		}
	}
	return nw
}

// admit decides the fate of bytes of f that reach a proxy at now. lost: the
// link is cut (and f is not a transport signal), or f already lost bytes; f
// then never delivers again and is aborted when the link is mended.
// Otherwise due is when they may be delivered: now plus the link's latency
// and a jitter drawn uniformly from [-jitter, +jitter], but never before
// f's earlier bytes (a flow keeps its order).
func (nw *network) admit(f *flow, now time.Time) (due time.Time, lost bool) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if f.lost {
		return time.Time{}, true
	}
	if nw.cut[f.from][f.to] && !f.signal {
		f.lost = true
		nw.lost[f.from][f.to][f] = struct{}{}
		return time.Time{}, true
	}
	d := nw.delay[f.from][f.to]
	lat := d.Latency
	if d.Jitter > 0 {
		lat += time.Duration(nw.rng.Int64N(int64(2*d.Jitter)+1)) - d.Jitter
	}
	due = now.Add(lat)
	if due.Before(f.due) {
		due = f.due
	}
	f.due = due
	return due, false
}

// cuts returns a copy of the cut matrix.
func (nw *network) cuts() linkMatrix {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	m := newLinkMatrix(len(nw.cut))
	for i := range m {
		copy(m[i], nw.cut[i])
	}
	return m
}

// setCuts installs m as the cut matrix and aborts the flows that lost bytes
// on a link that m mends.
func (nw *network) setCuts(m linkMatrix) {
	var aborted []*flow
	nw.mu.Lock()
	for i := range m {
		for j := range m[i] {
			nw.cut[i][j] = m[i][j]
			if m[i][j] {
				continue
			}
			for f := range nw.lost[i][j] {
				aborted = append(aborted, f)
			}
			clear(nw.lost[i][j])
		}
	}
	nw.mu.Unlock()
	for _, f := range aborted {
		f.abort()
	}
}

// setDelay sets the delay of the link from -> to; a zero latency removes it.
// Jitter is capped at the latency.
func (nw *network) setDelay(from, to int, d linkDelay) {
	if d.Latency <= 0 {
		d = linkDelay{}
	}
	d.Jitter = min(max(d.Jitter, 0), d.Latency)
	nw.mu.Lock()
	nw.delay[from][to] = d
	nw.mu.Unlock()
}

// isLost reports whether a cut dropped bytes of f.
func (nw *network) isLost(f *flow) bool {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return f.lost
}

// forget drops a finished flow from the lost sets.
func (nw *network) forget(f *flow) {
	nw.mu.Lock()
	if f.lost {
		delete(nw.lost[f.from][f.to], f)
	}
	nw.mu.Unlock()
}

// links lists every ordered pair (i != j) in index order with its state.
func (nw *network) links(names []string) []Link {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	n := len(nw.cut)
	out := make([]Link, 0, n*(n-1))
	for i := range n {
		for j := range n {
			if i != j {
				d := nw.delay[i][j]
				out = append(out, Link{From: names[i], To: names[j], Cut: nw.cut[i][j], Latency: d.Latency, Jitter: d.Jitter})
			}
		}
	}
	return out
}
