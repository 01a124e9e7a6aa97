package history

import (
	"cmp"
	"slices"
	"time"
)

// OverlapStats summarise intervals in which two different clients both
// believed they held the lock on the same resource.
type OverlapStats struct {
	Count int           `json:"count"`   // intersecting pairs of intervals
	Total time.Duration `json:"totalNs"` // summed length of the intersections
	Max   time.Duration `json:"maxNs"`   // longest intersection
}

// OutcomeCounts counts one kind of operation by outcome.
type OutcomeCounts struct {
	OK      int `json:"ok"`
	Fail    int `json:"fail"`
	Unknown int `json:"unknown"`
}

// Counts counts operations per kind and outcome; Stale counts requests the
// fenced resource rejected for a stale fencing token.
type Counts struct {
	Acquire OutcomeCounts `json:"acquire"`
	Release OutcomeCounts `json:"release"`
	Renew   OutcomeCounts `json:"renew"`
	Read    OutcomeCounts `json:"read"`
	Write   OutcomeCounts `json:"write"`
	Stale   int           `json:"stale"`
}

// Unknown returns the number of operations of every kind whose outcome is
// unknown.
func (c Counts) Unknown() int {
	return c.Acquire.Unknown + c.Release.Unknown + c.Renew.Unknown + c.Read.Unknown + c.Write.Unknown
}

func countOps(ops []Op) Counts {
	var c Counts
	for _, op := range ops {
		var oc *OutcomeCounts
		switch op.Op {
		case OpAcquire:
			oc = &c.Acquire
		case OpRelease:
			oc = &c.Release
		case OpRenew:
			oc = &c.Renew
		case OpRead:
			oc = &c.Read
		case OpWrite:
			oc = &c.Write
		default:
			continue
		}
		switch op.Outcome {
		case OK:
			oc.OK++
		case Fail:
			oc.Fail++
		default:
			oc.Unknown++
		}
		if op.Output.Rejected {
			c.Stale++
		}
	}
	return c
}

// belief is an interval in which one client believed it held a lock.
type belief struct {
	client     string
	start, end int64
}

// beliefs returns, per resource, the intervals in which clients believed
// they held the lock: from an acquire's successful return to the call of the
// first release with that token (whatever its outcome) or the return of a
// renew that failed; without either, to the earliest lease end the client
// knew of (acquire or renew call + TTL). A paused client keeps believing
// until it acts again, which is exactly the overlap fencing must defuse.
func beliefs(ops []Op) map[string][]belief {
	type key struct{ resource, token string }
	type open struct {
		belief
		leaseEnd int64
		closed   bool
	}
	var end int64
	for _, op := range ops {
		end = max(end, op.Call, op.ret(0))
	}
	order := make([]int, len(ops))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(ops[a].Call, ops[b].Call) })
	held := map[key]*open{}
	var all []*open
	var keys []key
	for _, i := range order {
		op := ops[i]
		switch op.Op {
		case OpAcquire:
			if op.Outcome != OK || op.Output.LockToken == "" {
				continue
			}
			ttl := seconds(op.Output.TTL)
			if ttl == 0 {
				ttl = seconds(op.Input.TTL)
			}
			o := &open{belief: belief{client: op.Client, start: op.ret(end)}, leaseEnd: op.Call + ttl}
			k := key{op.Resource, op.Output.LockToken}
			held[k] = o
			all = append(all, o)
			keys = append(keys, k)
		case OpRelease, OpRenew:
			o, ok := held[key{op.Resource, op.Input.LockToken}]
			if !ok || o.closed {
				continue
			}
			switch {
			case op.Op == OpRelease:
				o.end, o.closed = op.Call, true
			case op.Outcome == Fail && ClaimsNotHeld(op.Output):
				o.end, o.closed = op.ret(end), true
			case op.Outcome == OK:
				ttl := seconds(op.Output.TTL)
				if ttl == 0 {
					ttl = seconds(op.Input.TTL)
				}
				o.leaseEnd = max(o.leaseEnd, op.Call+ttl)
			}
		}
	}
	out := map[string][]belief{}
	for i, o := range all {
		if !o.closed {
			o.end = min(o.leaseEnd, end)
		}
		if o.end > o.start {
			out[keys[i].resource] = append(out[keys[i].resource], o.belief)
		}
	}
	return out
}

// overlap measures how long different clients' beliefs intersect.
func overlap(ops []Op) OverlapStats {
	var s OverlapStats
	for _, bs := range beliefs(ops) {
		slices.SortFunc(bs, func(a, b belief) int { return cmp.Compare(a.start, b.start) })
		for i, a := range bs {
			for _, b := range bs[i+1:] {
				if b.start >= a.end {
					break
				}
				if a.client == b.client {
					continue
				}
				d := time.Duration(min(a.end, b.end) - b.start)
				s.Count++
				s.Total += d
				s.Max = max(s.Max, d)
			}
		}
	}
	return s
}
