package history

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// ResolveCode marks the Output.Code of an operation Resolve found had no
// effect. It is not a "not held" claim (see ClaimsNotHeld).
const ResolveCode = "resolved_not_applied"

// Record is what the system of record (etcd) says about the lock service,
// read after the history ended: every grant it wrote and every release it
// recorded. Times are nanoseconds since the history's start, like Op times.
type Record struct {
	// Grants is every grant etcd recorded, in revision order.
	Grants []Grant
	// Released maps the lock token of each unknown release that etcd
	// recorded as done (a release receipt) to when that was seen.
	Released map[string]int64
	// Now is when the record was read: every write that took effect had
	// taken effect by then.
	Now int64
	// From is when the record begins to be complete (0: from the start).
	// An operation called before From is left unknown: what it did may be
	// in the part of the record that was forgotten.
	From int64
}

// Grant is one lock grant etcd recorded.
type Grant struct {
	Owner    string        `json:"owner"` // the clientId of the acquire
	Resource string        `json:"resource"`
	Revision int64         `json:"fencingToken"`      // the fencing token
	TTL      time.Duration `json:"ttlNs"`             // the lease's granted TTL
	Seen     int64         `json:"seenNs"`            // when it was seen (after it was committed)
	Ended    int64         `json:"endedNs,omitempty"` // when its deletion (release, revoke, expiry) was seen; 0 = not seen
}

// Resolve settles operations whose outcome the client never learned (a lock
// server crashed mid-request, etcd did not answer in time) from what etcd
// recorded, as etcd's robustness tests patch their histories from the WAL.
// It returns the settled history (sorted by call time) and how many
// operations it settled; ops is not modified.
//
// A client runs one acquire at a time, so the grants etcd recorded with that
// client as owner, in revision order, belong to its acquire attempts that
// took effect, in call order. Each grant not claimed by an acquire the client
// saw succeed belongs to the unknown acquire between the client's
// neighbouring successful acquires (its fencing token lies between theirs,
// and it was seen after that acquire was called: a grant committed earlier
// is not its effect, even when a lock server wrongly answered an earlier
// acquire with a definite failure):
// that acquire becomes OK with the grant's fencing token, returning when the
// grant was seen. Nobody learned that grant's token, so nobody releases it;
// when etcd deleted it (its lock server revoked the lease, or it expired), a
// release of it is added, returning when the deletion was seen, so that the
// checker knows the lock was free from then on. An unknown acquire for which
// etcd recorded no grant had no effect and becomes Fail (Code ResolveCode),
// returning before the client's next acquire (or at Now).
//
// A release whose outcome is unknown is settled by its receipt: with one it
// took effect (OK, returning when the receipt was seen), without one it did
// not (Fail with Code ResolveCode, which claims nothing about who holds the
// lock). Renewals stay unknown.
func Resolve(ops []Op, rec Record) ([]Op, int) {
	ops = slices.Clone(ops)
	synth, resolved := resolveAcquires(ops, rec)
	for i := range ops {
		op := &ops[i]
		if op.Op != OpRelease || op.Outcome != Unknown || op.Call < rec.From {
			continue
		}
		resolved++
		if at, ok := rec.Released[op.Input.LockToken]; ok {
			ret := max(at, op.Call)
			op.Outcome, op.Return = OK, &ret
			op.Output.Error = "outcome resolved from etcd: released"
			continue
		}
		ret := max(rec.Now, op.Call)
		op.Outcome, op.Return = Fail, &ret
		op.Output.Code = ResolveCode
		op.Output.Error = "outcome resolved from etcd: no release was recorded"
	}
	ops = append(ops, synth...)
	slices.SortStableFunc(ops, func(a, b Op) int { return cmp.Compare(a.Call, b.Call) })
	return ops, resolved
}

// resolveAcquires settles the unknown acquires of ops in place, client by
// client, and returns the releases it synthesized for grants that etcd
// deleted, and how many acquires it settled.
func resolveAcquires(ops []Op, rec Record) (synth []Op, resolved int) {
	byOwner := map[string][]Grant{}
	for _, g := range rec.Grants {
		byOwner[g.Owner] = append(byOwner[g.Owner], g)
	}
	perClient := map[string][]int{} // acquires per client, in call order (indexes into ops)
	for i, op := range ops {
		if op.Op == OpAcquire {
			perClient[op.Client] = append(perClient[op.Client], i)
		}
	}
	for _, client := range slices.Sorted(maps.Keys(perClient)) {
		idx := perClient[client]
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(ops[a].Call, ops[b].Call) })
		claimed := map[int64]bool{}
		for _, i := range idx {
			if ops[i].Outcome == OK {
				claimed[ops[i].Output.FencingToken] = true
			}
		}
		free := slices.DeleteFunc(slices.Clone(byOwner[client]), func(g Grant) bool { return claimed[g.Revision] })
		for k, i := range idx {
			if ops[i].Outcome != Unknown || ops[i].Call < rec.From {
				continue
			}
			resolved++
			lo, hi := neighbourTokens(ops, idx, k)
			found := slices.IndexFunc(free, func(g Grant) bool {
				return g.Revision > lo && g.Revision < hi && g.Resource == ops[i].Resource && g.Seen >= ops[i].Call
			})
			op := &ops[i]
			if found < 0 {
				ret := max(op.Call, rec.Now)
				if k+1 < len(idx) {
					ret = ops[idx[k+1]].Call // it was over before the client's next acquire
				}
				op.Outcome, op.Return = Fail, &ret
				op.Output.Code = ResolveCode
				op.Output.Error = "outcome resolved from etcd: no grant was recorded"
				continue
			}
			g := free[found]
			free = slices.Delete(free, found, found+1)
			if end, ok := granted(op, g); ok {
				synth = append(synth, end)
			}
		}
	}
	return synth, resolved
}

// granted settles op as the grant g and, when etcd deleted g, returns the
// release of it that nobody sent (its lock server revoked the lease, or it
// expired): from then on the lock was free.
func granted(op *Op, g Grant) (Op, bool) {
	ret := max(g.Seen, op.Call)
	ttl := g.TTL.Seconds()
	op.Outcome, op.Return = OK, &ret
	op.Output.FencingToken = g.Revision
	op.Output.TTL = &ttl
	op.Output.Error = "outcome resolved from etcd: granted"
	if g.Ended == 0 {
		return Op{}, false
	}
	tok := fmt.Sprintf("resolved-grant-%d", g.Revision)
	op.Output.LockToken = tok
	end := max(g.Ended, ret)
	return Op{
		Client: op.Client, Op: OpRelease, Resource: op.Resource,
		Input: Input{LockToken: tok}, Call: op.Call, Return: &end, Outcome: OK,
		Output: Output{Error: "synthesized from etcd: the grant's lease was revoked or expired"},
	}, true
}

// neighbourTokens returns the fencing tokens of the client's successful
// acquires just before and just after its k-th acquire (0 and MaxInt64 when
// there is none).
func neighbourTokens(ops []Op, idx []int, k int) (lo, hi int64) {
	lo, hi = 0, math.MaxInt64
	for j := k - 1; j >= 0; j-- {
		if o := ops[idx[j]]; o.Outcome == OK {
			lo = o.Output.FencingToken
			break
		}
	}
	for j := k + 1; j < len(idx); j++ {
		if o := ops[idx[j]]; o.Outcome == OK {
			hi = o.Output.FencingToken
			break
		}
	}
	return lo, hi
}

// Unexplained returns the grants of rec that no answer in ops accounts for:
// etcd granted the lock to a client, yet every acquire of that client that
// could have made the grant was answered with a definite failure ("busy",
// "unavailable": no effect). ops is a history after Resolve. Such an answer
// breaks the lock service's contract even when no check is violated — the
// failed acquire is dropped as "no effect" while the grant kept others out
// — so a run reports it.
//
// The acquires that could have made grant g are those of g.Owner called
// before etcd's record saw g, after the client's last successful acquire
// with a lower fencing token (a client runs one acquire at a time). One
// that succeeded (with a later grant: a queued acquire can be handed a lock
// that ends unseen, then be granted again) or whose outcome is unknown
// explains g. Grants seen before rec.From, and grants to owners that made
// no operation in ops, are not judged.
func Unexplained(ops []Op, rec Record) []Grant {
	acquires := map[string][]Op{} // per client, in call order
	claimed := map[int64]bool{}
	for _, op := range ops {
		if op.Op != OpAcquire {
			continue
		}
		acquires[op.Client] = append(acquires[op.Client], op)
		if op.Outcome == OK {
			claimed[op.Output.FencingToken] = true
		}
	}
	for _, a := range acquires {
		slices.SortStableFunc(a, func(x, y Op) int { return cmp.Compare(x.Call, y.Call) })
	}
	var out []Grant
	for _, g := range rec.Grants {
		a, ok := acquires[g.Owner]
		if !ok || claimed[g.Revision] || g.Seen < rec.From {
			continue
		}
		if !explained(a, g) {
			out = append(out, g)
		}
	}
	return out
}

// explained reports whether one of a client's acquires a (in call order)
// could have made grant g without saying "no effect".
func explained(a []Op, g Grant) bool {
	from := 0
	for i, op := range a {
		if op.Outcome == OK && op.Output.FencingToken < g.Revision {
			from = i + 1
		}
	}
	for _, op := range a[from:] {
		if op.Call > g.Seen {
			break
		}
		if op.Outcome != Fail {
			return true
		}
	}
	return false
}
