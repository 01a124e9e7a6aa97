package history

import (
	"cmp"
	"math"
	"slices"

	"github.com/anishathalye/porcupine"
)

// classified is the kind of a shrunk set and the operations that show it
// (indices into the core), for the words.
type classified struct {
	kind Kind
	a, b *porcupine.Operation // the two operations at the heart of it (b may be nil)
	// stale: the accepted operation whose higher token the stale write
	// (b's write) came after.
	newer *Op
}

func input(op *porcupine.Operation) *minput { return op.Input.(*minput) }

// classify names the anomaly of a shrunk set from its operations alone,
// in the precedence order of the Kind constants. all is the whole history
// (for "nobody wrote this value").
func classify(model string, core, context []porcupine.Operation, all []Op) classified {
	if model == ModelLock {
		return classifyLock(core)
	}
	return classifyResource(core, context, all)
}

// holdEnd is the time until which an acquire's token must have held the
// lock: its lease cannot expire before call + TTL, pushed on by the renews
// in the set called while it was still certainly alive, and it cannot have
// been released before its release's call.
func holdEnd(core []porcupine.Operation, acq *porcupine.Operation) int64 {
	a := input(acq)
	end := a.call + a.ttl
	var renews []*minput
	for i := range core {
		if m := input(&core[i]); m.token == a.token && m.kind == kRenew && m.outcome == OK {
			renews = append(renews, m)
		}
	}
	slices.SortFunc(renews, func(x, y *minput) int { return cmp.Compare(x.call, y.call) })
	for _, r := range renews {
		if r.call < end {
			end = max(end, r.call+r.ttl)
		}
	}
	for i := range core {
		m := input(&core[i])
		if m.token == a.token && m.kind == kRelease && m.outcome != Fail {
			end = min(end, m.call)
		}
	}
	return end
}

func classifyLock(core []porcupine.Operation) classified {
	var acqs []*porcupine.Operation
	ends := map[*porcupine.Operation]int64{}
	for i := range core {
		if input(&core[i]).kind == kAcquire {
			acqs = append(acqs, &core[i])
			ends[&core[i]] = holdEnd(core, &core[i])
		}
	}
	for _, a := range acqs {
		for _, b := range acqs {
			ma, mb := input(a), input(b)
			if a == b || ma.token == mb.token && ma.token > 0 || ma.ret > mb.ret {
				continue
			}
			if mb.ret < ends[a] && ma.ret < ends[b] {
				return classified{kind: KindDoubleGrant, a: a, b: b}
			}
		}
	}
	for _, a := range acqs {
		for i := range core {
			if m := input(&core[i]); m.claim && m.token == input(a).token && m.ret < ends[a] {
				return classified{kind: KindLostEarly, a: a, b: &core[i]}
			}
		}
	}
	for _, a := range acqs {
		for _, b := range acqs {
			ma, mb := input(a), input(b)
			if ma.ret < mb.call && ma.fencing > 0 && mb.fencing > 0 && mb.fencing <= ma.fencing {
				return classified{kind: KindFencingBack, a: a, b: b}
			}
		}
	}
	for i := range core {
		m := input(&core[i])
		if (m.kind == kRelease || m.kind == kRenew) && m.outcome == OK {
			c := classified{kind: KindNonHolder, a: &core[i]}
			// the latest other grant before it, if any, took the lock
			for _, b := range acqs {
				if mb := input(b); mb.token != m.token && mb.ret <= m.ret && (c.b == nil || mb.ret > input(c.b).ret) {
					c.b = b
				}
			}
			return c
		}
	}
	return classified{kind: KindOther}
}

// accepted reports whether the resource accepted a record: a read or write
// that succeeded and was not rejected.
func accepted(op Op) bool { return op.Outcome == OK && !op.Output.Rejected }

func classifyResource(core, context []porcupine.Operation, all []Op) classified {
	var recs []Op
	for _, op := range append(append([]porcupine.Operation{}, core...), context...) {
		recs = append(recs, op.Metadata.(opMeta).ops...)
	}
	for i := range core {
		m := input(&core[i])
		meta := core[i].Metadata.(opMeta).ops
		w := meta[len(meta)-1]
		if m.write == writeNone || !accepted(w) || w.Input.FencingToken <= 0 {
			continue
		}
		var newer *Op
		for j := range recs {
			o := recs[j]
			if accepted(o) && o.Input.FencingToken > w.Input.FencingToken && o.ret(math.MaxInt64) < w.Call &&
				(newer == nil || o.Input.FencingToken > newer.Input.FencingToken) {
				newer = &recs[j]
			}
		}
		if newer != nil {
			c := classified{kind: KindStaleWrite, a: &core[i], newer: newer}
			if m.readOK { // the update built on the same read, if any, was lost
				for j := range core {
					if o := input(&core[j]); j != i && o.readOK && o.readVal == m.readVal && o.write != writeNone {
						c.b = &core[j]
					}
				}
			}
			return c
		}
	}
	for i := range core {
		for j := i + 1; j < len(core); j++ {
			a, b := input(&core[i]), input(&core[j])
			if a.readOK && b.readOK && a.readVal == b.readVal && a.write != writeNone && b.write != writeNone {
				return classified{kind: KindLostUpdate, a: &core[i], b: &core[j]}
			}
		}
	}
	written := map[int64]bool{}
	for _, op := range all {
		if op.Op == OpWrite && op.Input.Value != nil && op.Outcome != Fail && !op.Output.Rejected {
			written[*op.Input.Value] = true
		}
	}
	for i := range core {
		if m := input(&core[i]); m.readOK && !written[m.readVal] {
			return classified{kind: KindPhantomRead, a: &core[i]}
		}
	}
	return classified{kind: KindOther}
}
