package sim

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
	"github.com/locksim/locksim/web"
)

// This file holds the pure translations from the sandbox's own types to the
// visualizer's frame types, and the small frame bookkeeping shared by Web and
// WebRelay. Nothing here does I/O.

// webPhase maps a client phase to the page's vocabulary.
func webPhase(p string) string {
	switch p {
	case PhaseAcquiring:
		return "acquiring"
	case PhaseAcquired:
		return "reading" // it reads the resource right after the grant
	case PhaseAfterRead:
		return "holding"
	case PhaseBeforeWrite:
		return "writing"
	case PhaseReleasing:
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

// buildLinks lists the cut or delayed links: cuts between etcd members (from
// the cluster) and every link of the network emulator.
func buildLinks(members []cluster.Link, netLinks []faults.LinkState) []web.Link {
	var out []web.Link
	for _, l := range members {
		if l.Cut {
			out = append(out, web.Link{From: l.From, To: l.To, Cut: true})
		}
	}
	for _, l := range netLinks {
		if l.Blocked || l.Latency > 0 {
			out = append(out, web.Link{From: l.From, To: l.To, Cut: l.Blocked, DelayMs: l.Latency.Milliseconds()})
		}
	}
	return out
}

// cutNodes returns the nodes with at least one cut link.
func cutNodes(links []web.Link) map[string]bool {
	out := map[string]bool{}
	for _, l := range links {
		if l.Cut {
			out[l.From], out[l.To] = true, true
		}
	}
	return out
}

// buildLocks shows every lock of the given resources (and any other held in
// etcd): who holds it in etcd with the TTL left, next to who believes they
// hold it and who waits for it (clients acquiring it).
func buildLocks(resources []string, held map[string]lockserver.HeldLock, clients []ClientState, now time.Duration) []web.Lock {
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
			if c.Phase == PhaseAcquiring && !c.Paused {
				l.Waiters++
			}
		}
		out = append(out, l)
	}
	return out
}

// partitionCuts lists both directions of every link between nodes of
// different groups.
func partitionCuts(groups [][]string) [][2]string {
	var out [][2]string
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					out = append(out, [2]string{a, b})
				}
			}
		}
	}
	return out
}

func groupsLabel(groups [][]string) string {
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = "[" + strings.Join(g, " ") + "]"
	}
	return strings.Join(parts, " | ")
}

// frameLog keeps what a snapshot needs: the latest state, the most recent
// ops (capped) and every fault, each upserted by id.
type frameLog struct {
	maxOps int
	state  web.Frame // Ops and Faults nil
	ops    []web.Op  // sorted by ID
	opAt   map[uint64]int
	faults []web.Fault
	fAt    map[int]int
}

func newFrameLog(maxOps int) *frameLog {
	return &frameLog{maxOps: maxOps, opAt: map[uint64]int{}, fAt: map[int]int{}}
}

func (l *frameLog) apply(f web.Frame) {
	for _, o := range f.Ops {
		if i, ok := l.opAt[o.ID]; ok {
			l.ops[i] = o
			continue
		}
		if n := len(l.ops); n > 0 && o.ID < l.ops[n-1].ID {
			continue // older than everything kept: trimmed already
		}
		l.opAt[o.ID] = len(l.ops)
		l.ops = append(l.ops, o)
	}
	if over := len(l.ops) - l.maxOps; over > 0 {
		n := max(over, l.maxOps/10) // trim a tenth at a time
		l.ops = append([]web.Op(nil), l.ops[n:]...)
		clear(l.opAt)
		for i, o := range l.ops {
			l.opAt[o.ID] = i
		}
	}
	for _, x := range f.Faults {
		if i, ok := l.fAt[x.ID]; ok {
			l.faults[i] = x
			continue
		}
		l.fAt[x.ID] = len(l.faults)
		l.faults = append(l.faults, x)
	}
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
