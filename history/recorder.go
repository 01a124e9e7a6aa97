package history

import (
	"bufio"
	"encoding/json"

	"fmt"
	"io"
	"sync"
	"time"
)

// Recorder collects operations as they happen. It is safe for concurrent
// use. Times are nanoseconds since start on the monotonic clock.
//
// By default it keeps every operation in memory. For a long run, set Keep
// to bound what it keeps to the most recent operations, and Sink to stream
// every operation to a file as it ends (Flush writes those that never did),
// so that the whole history is on disk, read back for the final check, while
// memory stays flat. Every operation has a sequence number, its place in
// call order from 0, which trimming does not change.
type Recorder struct {
	// Now returns the current time; nil means time.Now. Set it before the
	// first Begin (tests use it to control the clock).
	Now func() time.Time
	// Keep, when > 0, bounds the operations kept in memory to about the
	// Keep most recent ones: older operations that have ended are dropped
	// (an operation still pending is never dropped). Set it before the
	// first Begin.
	Keep int
	// Sink, when set, receives every operation as a JSON line of
	// history.jsonl once it has ended, in the order they end; Flush writes
	// the operations still pending, as unknown. Set it before the first
	// Begin. Read it back with ReadJSONL and SortByCall.
	Sink io.Writer

	start time.Time
	mu    sync.Mutex
	base  int // sequence number of ops[0]
	ops   []Op
	done  []bool
	out   *bufio.Writer
	enc   *json.Encoder
	err   error // the first error writing to Sink
}

// Pending is an operation that has begun and not yet ended.
type Pending struct {
	r   *Recorder
	seq int
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
	// Taking the time under the lock keeps the sequence in call order.
	r.ops = append(r.ops, Op{Client: client, Op: op, Resource: resource, Input: in, Call: r.Since(), Outcome: Unknown})
	r.done = append(r.done, false)
	return &Pending{r: r, seq: r.base + len(r.ops) - 1}
}

// End records the outcome. OK and Fail get a return time; Unknown (or any
// other value) is recorded as Unknown without one. Only the first End of a
// Pending counts.
func (p *Pending) End(outcome Outcome, out Output) {
	r := p.r
	r.mu.Lock()
	defer r.mu.Unlock()
	i := p.seq - r.base
	if i < 0 || r.done[i] {
		return
	}
	r.done[i] = true
	op := &r.ops[i]
	op.Output = out
	if outcome == OK || outcome == Fail {
		ret := max(r.Since(), op.Call) // an injected clock may go backwards
		op.Outcome = outcome
		op.Return = &ret
	} else {
		op.Outcome = Unknown
	}
	r.writeLocked(op)
	r.trimLocked()
}

// writeLocked streams one ended operation to the Sink.
func (r *Recorder) writeLocked(op *Op) {
	if r.Sink == nil || r.err != nil {
		return
	}
	if r.enc == nil {
		r.out = bufio.NewWriter(r.Sink)
		r.enc = json.NewEncoder(r.out)
		r.enc.SetEscapeHTML(false)
	}
	if err := r.enc.Encode(op); err != nil {
		r.err = fmt.Errorf("history: stream: %w", err)
	}
}

// trimLocked drops the oldest ended operations once more than a tenth over
// Keep are kept, up to the first one still pending.
func (r *Recorder) trimLocked() {
	if r.Keep <= 0 || len(r.ops) <= r.Keep+r.Keep/10 {
		return
	}
	n := 0
	for n < len(r.ops)-r.Keep && r.done[n] {
		n++
	}
	if n == 0 {
		return
	}
	r.ops = append([]Op(nil), r.ops[n:]...)
	r.done = append([]bool(nil), r.done[n:]...)
	r.base += n
}

// Flush writes the operations still pending to the Sink, as unknown (the
// outcome of an operation nobody ended is unknown, never dropped), and
// flushes it. Call it once, when the history is over. It returns the first
// error writing to the Sink.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Sink == nil {
		return nil
	}
	for i := range r.ops {
		if !r.done[i] {
			r.done[i] = true
			r.writeLocked(&r.ops[i])
		}
	}
	if r.out != nil && r.err == nil {
		if err := r.out.Flush(); err != nil {
			r.err = fmt.Errorf("history: stream: %w", err)
		}
	}
	return r.err
}

// Ops returns a snapshot of the operations kept in memory (all of them
// unless Keep is set), in call order. Operations that are still pending are
// reported with outcome Unknown: never dropped.
func (r *Recorder) Ops() []Op {
	ops, _ := r.OpsFrom(0)
	return ops
}

// OpsFrom returns a snapshot of the kept operations whose sequence number is
// seq or more, in call order, and the sequence number of the first one
// returned (more than seq when older ones were trimmed).
func (r *Recorder) OpsFrom(seq int) ([]Op, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	from := max(seq-r.base, 0)
	if from > len(r.ops) {
		from = len(r.ops)
	}
	out := make([]Op, len(r.ops)-from)
	copy(out, r.ops[from:])
	for i := range out {
		if out[i].Return != nil {
			v := *out[i].Return
			out[i].Return = &v
		}
	}
	return out, r.base + from
}

// Op returns the operation of sequence number seq, if it is still kept.
func (r *Recorder) Op(seq int) (Op, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := seq - r.base
	if i < 0 || i >= len(r.ops) {
		return Op{}, false
	}
	op := r.ops[i]
	if op.Return != nil {
		v := *op.Return
		op.Return = &v
	}
	return op, true
}

// Len returns the number of operations begun so far (kept or not).
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.base + len(r.ops)
}
