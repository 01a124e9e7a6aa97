package live

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
	"github.com/locksim/locksim/sim/clients"
	"github.com/locksim/locksim/web"
)

// This file holds the pure translations from the sandbox's own types to the
// visualizer's frame types, and the small frame bookkeeping shared by Web and
// Relay. Nothing here does I/O.

// webPhase maps a client phase to the page's vocabulary.
func webPhase(p string) string {
	switch p {
	case component.PhaseAcquiring:
		return "acquiring"
	case component.PhaseAcquired:
		return "reading" // it reads the resource right after the grant
	case component.PhaseAfterRead:
		return "holding"
	case component.PhaseBeforeWrite:
		return "writing"
	case component.PhaseReleasing:
		return "releasing"
	default: // idle, released, ""
		return "idle"
	}
}

// webOp turns the recorder's op number id into a page op. An op without a
// return time and without an error is still pending (outcome ""); one that
// ended without a return time has an unknown outcome.
func webOp(id int, op history.Op) web.Op {
	out := web.Op{ID: uint64(id), Client: op.Client, Op: op.Op, Resource: op.Resource, Call: op.Call}
	switch {
	case op.Return != nil:
		out.Return = *op.Return
		out.Outcome = string(op.Outcome)
	case opPending(op):
		out.Outcome = ""
	default:
		out.Outcome = string(history.Unknown)
	}
	out.Detail = opDetail(op)
	return out
}

func opPending(op history.Op) bool {
	return op.Return == nil && op.Output.Error == "" && op.Output.Code == ""
}

func opDetail(op history.Op) string {
	o := op.Output
	switch {
	case o.Error != "":
		return o.Error
	case o.Rejected:
		return fmt.Sprintf("stale token %d rejected", op.Input.FencingToken)
	case op.Return == nil:
		return ""
	}
	switch op.Op {
	case "acquire":
		return fmt.Sprintf("fencing token %d", o.FencingToken)
	case "read":
		if o.Value != nil {
			return fmt.Sprintf("value %d (token %d)", *o.Value, op.Input.FencingToken)
		}
	case "write":
		if op.Input.Value != nil {
			return fmt.Sprintf("value %d (token %d)", *op.Input.Value, op.Input.FencingToken)
		}
	}
	return ""
}

// webFault turns a fault event (times already on the sandbox's clock) into a
// page fault.
func webFault(ev faults.Event) web.Fault {
	target := ev.Resolved
	if target == "" {
		target = ev.Target
	}
	f := web.Fault{ID: ev.ID, Fault: ev.Fault, Target: target, Start: int64(ev.Start), Note: ev.Note, Error: ev.Error}
	if !ev.Active {
		f.End = max(int64(ev.End), f.Start)
	}
	return f
}

// buildLocks shows every lock of the given resources (and any other held in
// etcd): who holds it in etcd with the TTL left, next to who believes they
// hold it and who waits for it (clients acquiring it).
func buildLocks(resources []string, held map[string]lockserver.HeldLock, clients []clients.State, now time.Duration) []web.Lock {
	names := slices.Clone(resources)
	for r := range held {
		names = append(names, r)
	}
	for _, c := range clients {
		if c.Resource != "" {
			names = append(names, c.Resource)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	out := make([]web.Lock, 0, len(names))
	for _, r := range names {
		l := web.Lock{Resource: r, Believers: []string{}}
		if h, ok := held[r]; ok {
			l.Held, l.Owner, l.FencingToken, l.TTLms = true, h.Owner, h.FencingToken, h.TTL.Milliseconds()
			l.ExpiresInMs = max(0, (h.Since + h.TTL - now).Milliseconds())
		}
		for _, c := range clients {
			if c.Resource != r {
				continue
			}
			if c.Believes {
				l.Believers = append(l.Believers, c.Name)
			}
			if c.Phase == component.PhaseAcquiring && !c.Paused {
				l.Waiters++
			}
		}
		out = append(out, l)
	}
	return out
}

// frameLog keeps what a snapshot needs: the latest state, the most recent
// ops (capped) and every fault, each upserted by id.
type frameLog struct {
	maxOps int
	state  web.Frame // Ops and Faults nil
	ops    []web.Op  // sorted by ID
	faults []web.Fault
}

func newFrameLog(maxOps int) *frameLog { return &frameLog{maxOps: maxOps} }

func (l *frameLog) apply(f web.Frame) {
	ops := f.Ops
	if len(l.ops) > 0 { // an op older than everything kept was trimmed already
		oldest := l.ops[0].ID
		ops = slices.DeleteFunc(slices.Clone(ops), func(o web.Op) bool { return o.ID < oldest })
	}
	l.ops = web.Upsert(l.ops, ops, func(o web.Op) uint64 { return o.ID })
	if over := len(l.ops) - l.maxOps; over > 0 {
		n := max(over, l.maxOps/10) // trim a tenth at a time
		l.ops = slices.Clone(l.ops[n:])
	}
	l.faults = web.Upsert(l.faults, f.Faults, func(x web.Fault) int { return x.ID })
	f.Ops, f.Faults = nil, nil
	l.state = f
}

func (l *frameLog) snapshot() web.Frame {
	f := l.state
	f.Ops = slices.Clone(l.ops)
	f.Faults = slices.Clone(l.faults)
	return f
}

// fanout hands frames to subscribers without blocking: a subscriber whose
// channel is full gets the frames it missed merged into its next one, so no
// op or fault is lost and the publisher never waits.
type fanout struct {
	mu   sync.Mutex
	subs map[*frameSub]struct{}
}

type frameSub struct {
	ch    chan web.Frame
	carry *web.Frame
}

func (fo *fanout) subscribe(buf int) (<-chan web.Frame, func()) {
	s := &frameSub{ch: make(chan web.Frame, buf)}
	fo.mu.Lock()
	if fo.subs == nil {
		fo.subs = map[*frameSub]struct{}{}
	}
	fo.subs[s] = struct{}{}
	fo.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			fo.mu.Lock()
			delete(fo.subs, s)
			fo.mu.Unlock()
		})
	}
}

func (fo *fanout) publish(f web.Frame) {
	fo.mu.Lock()
	defer fo.mu.Unlock()
	for s := range fo.subs {
		out := f
		if s.carry != nil {
			out = web.Merge(*s.carry, f)
		}
		select {
		case s.ch <- out:
			s.carry = nil
		default:
			s.carry = &out
		}
	}
}
