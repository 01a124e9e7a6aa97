package history

import (
	"sync"
	"time"
)

// Recorder collects operations as they happen. It is safe for concurrent
// use. Times are nanoseconds since start on the monotonic clock.
type Recorder struct {
	// Now returns the current time; nil means time.Now. Set it before the
	// first Begin (tests use it to control the clock).
	Now func() time.Time

	start time.Time
	mu    sync.Mutex
	ops   []Op
	done  []bool
}

// Pending is an operation that has begun and not yet ended.
type Pending struct {
	r *Recorder
	i int
}

// NewRecorder returns a Recorder whose clock counts from start. Pass a
// time.Now() value so that the monotonic reading is used.
func NewRecorder(start time.Time) *Recorder {
	return &Recorder{start: start}
}

// Since returns the nanoseconds elapsed since start, on the recorder's clock
// (for fault annotations).
func (r *Recorder) Since() int64 {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	return int64(now().Sub(r.start))
}

// Begin records the call of an operation and returns its handle.
func (r *Recorder) Begin(client, op, resource string, in Input) *Pending {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Taking the time under the lock keeps Ops ordered by call time.
	r.ops = append(r.ops, Op{Client: client, Op: op, Resource: resource, Input: in, Call: r.Since(), Outcome: Unknown})
	r.done = append(r.done, false)
	return &Pending{r: r, i: len(r.ops) - 1}
}

// End records the outcome. OK and Fail get a return time; Unknown (or any
// other value) is recorded as Unknown without one. Only the first End of a
// Pending counts.
func (p *Pending) End(outcome Outcome, out Output) {
	r := p.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done[p.i] {
		return
	}
	r.done[p.i] = true
	op := &r.ops[p.i]
	op.Output = out
	if outcome != OK && outcome != Fail {
		op.Outcome = Unknown
		return
	}
	ret := r.Since()
	if ret < op.Call {
		ret = op.Call // an injected clock may go backwards
	}
	op.Outcome = outcome
	op.Return = &ret
}

// Ops returns a snapshot of every operation in call order. Operations that
// are still pending are reported with outcome Unknown: never dropped.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Op, len(r.ops))
	copy(out, r.ops)
	for i := range out {
		if out[i].Return != nil {
			v := *out[i].Return
			out[i].Return = &v
		}
	}
	return out
}

// Len returns the number of operations begun so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops)
}
