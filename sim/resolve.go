package sim

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
)

// etcdRecord is what etcd recorded of the locks (a *lockserver.Observer).
type etcdRecord interface {
	Grants() []lockserver.RecordedGrant
	Ended(rev int64) (time.Duration, bool)
	Released(hash string) (time.Duration, bool)
}

// resolveUnknownAcquires settles acquires whose outcome the client could not
// learn (a lock server crashed mid-request, etcd did not answer in time),
// from what etcd itself recorded, as etcd's robustness tests patch their
// histories from the WAL.
//
// A client runs one acquire at a time, so the grants etcd recorded with that
// client as owner, in revision order, belong to its acquire attempts that
// took effect, in call order. Each grant not claimed by an acquire the client
// saw succeed belongs to the unknown acquire between the client's
// neighbouring successful acquires: that acquire becomes "ok" with the grant's
// fencing token, returning when the observer saw the grant. An unknown acquire
// for which etcd recorded no grant had no effect and becomes "fail". The
// observer must have caught up with etcd first (Observer.Sync).
//
// A release whose outcome is unknown is settled by the release receipt the
// lock server writes in the same txn that deletes the lock: with a receipt
// for its token it took effect ("ok", returning when the observer saw the
// receipt), without one it did not ("fail" with code resolved_not_applied,
// which claims nothing about who holds the lock). Renewals stay unknown.
func (sb *Sandbox) resolveUnknownAcquires(rec etcdRecord, ops []history.Op) ([]history.Op, int) {
	grants := rec.Grants()
	byOwner := map[string][]lockserver.RecordedGrant{}
	for _, g := range grants {
		byOwner[g.Owner] = append(byOwner[g.Owner], g)
	}
	// Acquires per client, in call order (indexes into ops).
	perClient := map[string][]int{}
	for i, op := range ops {
		if op.Op == "acquire" {
			perClient[op.Client] = append(perClient[op.Client], i)
		}
	}
	resolved := 0
	var synth []history.Op
	for client, idx := range perClient {
		slices.SortFunc(idx, func(a, b int) int { return int(ops[a].Call - ops[b].Call) })
		claimed := map[int64]bool{}
		for _, i := range idx {
			if ops[i].Outcome == history.OK {
				claimed[ops[i].Output.FencingToken] = true
			}
		}
		var free []lockserver.RecordedGrant
		for _, g := range byOwner[client] {
			if !claimed[g.Revision] {
				free = append(free, g)
			}
		}
		for k, i := range idx {
			if ops[i].Outcome != history.Unknown {
				continue
			}
			lo, hi := int64(0), int64(math.MaxInt64)
			for j := k - 1; j >= 0; j-- {
				if o := ops[idx[j]]; o.Outcome == history.OK {
					lo = o.Output.FencingToken
					break
				}
			}
			for j := k + 1; j < len(idx); j++ {
				if o := ops[idx[j]]; o.Outcome == history.OK {
					hi = o.Output.FencingToken
					break
				}
			}
			found := -1
			for f, g := range free {
				if g.Revision > lo && g.Revision < hi && g.Resource == ops[i].Resource {
					found = f
					break
				}
			}
			op := &ops[i]
			if found < 0 {
				op.Outcome = history.Fail
				ret := op.Call
				if k+1 < len(idx) {
					ret = ops[idx[k+1]].Call // it was over before the client's next acquire
				} else {
					ret = max(ret, int64(sb.now()))
				}
				op.Return = &ret
				op.Output.Code = history.ResolveCode
				op.Output.Error = "outcome resolved from etcd: no grant was recorded"
				resolved++
				continue
			}
			g := free[found]
			free = append(free[:found], free[found+1:]...)
			ret := max(int64(g.Seen), op.Call)
			ttl := g.TTL.Seconds()
			op.Outcome = history.OK
			op.Return = &ret
			op.Output.FencingToken = g.Revision
			op.Output.TTL = &ttl
			op.Output.Error = "outcome resolved from etcd: granted"
			resolved++
			// Nobody learned this grant's token, so no client releases it;
			// but a lock server that got no answer revokes the lease at once,
			// and otherwise it expires. Either way etcd deleted it: record
			// that end as a release of the grant, bounded by when the
			// observer saw the deletion, so the checker knows the lock was
			// free again from then on.
			if end, ok := rec.Ended(g.Revision); ok {
				tok := fmt.Sprintf("resolved-grant-%d", g.Revision)
				op.Output.LockToken = tok
				endRet := max(int64(end), ret)
				synth = append(synth, history.Op{
					Client: client, Op: history.OpRelease, Resource: op.Resource,
					Input: history.Input{LockToken: tok}, Call: op.Call, Return: &endRet, Outcome: history.OK,
					Output: history.Output{Error: "synthesized from etcd: the grant's lease was revoked or expired"},
				})
			}
		}
	}
	for i := range ops {
		op := &ops[i]
		if op.Op != "release" || op.Outcome != history.Unknown {
			continue
		}
		if at, ok := rec.Released(lockserver.HashToken(op.Input.LockToken)); ok {
			ret := max(int64(at), op.Call)
			op.Outcome, op.Return = history.OK, &ret
			op.Output.Error = "outcome resolved from etcd: released"
		} else {
			ret := max(int64(sb.now()), op.Call)
			op.Outcome, op.Return = history.Fail, &ret
			op.Output.Code = history.ResolveCode
			op.Output.Error = "outcome resolved from etcd: no release was recorded"
		}
		resolved++
	}
	ops = append(ops, synth...)
	slices.SortStableFunc(ops, func(a, b history.Op) int { return cmp.Compare(a.Call, b.Call) })
	return ops, resolved
}
