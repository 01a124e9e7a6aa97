package history

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// partition is the porcupine history of one model on one resource.
type partition struct {
	model    string // ModelLock or ModelResource
	resource string
	ops      []porcupine.Operation
}

// built is a history translated for porcupine.
type built struct {
	parts   []partition
	tokens  []string       // token id -> token
	clients map[string]int // client -> porcupine ClientId
}

// opMeta is the metadata shown in the visualization's tooltip.
type opMeta struct {
	ops []Op
	idx []int // positions of ops in the history given to build
}

func (m opMeta) String() string {
	parts := make([]string, len(m.ops))
	for i, op := range m.ops {
		ret := "unknown"
		if op.Return != nil {
			ret = dur(*op.Return)
		}
		s := fmt.Sprintf("%s %s %s: call %s, return %s, %s", op.Client, op.Op, op.Resource, dur(op.Call), ret, op.Outcome)
		if op.Output.Error != "" || op.Output.Code != "" {
			s += fmt.Sprintf(" (%s %s)", op.Output.Code, op.Output.Error)
		}
		if op.Output.Rejected {
			s += " (rejected: stale fencing token)"
		}
		parts[i] = s
	}
	return strings.Join(parts, "; ")
}

// build translates ops into porcupine partitions, dropping operations that
// cannot constrain or change a model:
//
//   - failed acquires (busy or timed out: liveness, not safety);
//   - acquires with unknown outcome: "it took effect" never explains
//     anything "it did not" cannot (the token is unknown to everybody, the
//     grant only raises the fencing floor and the expiry), so dropping them
//     keeps the verdict and removes the search blow-up they cause. An
//     unknown acquire that etcd says took effect should be settled with
//     Resolve: it then constrains the history;
//   - failed releases and renews whose code does not claim "not held"
//     (ClaimsNotHeld): rejected requests change nothing;
//   - renews with unknown outcome: extending a lease only forbids more, so
//     "not applied" admits every history "applied" admits;
//   - reads that failed, were rejected or have unknown outcome, and writes
//     that failed or were rejected without a read before them.
//
// Reads and writes pair up per client and resource, in call order: a write
// joins the latest unpaired successful read of the same client on the same
// resource when both carry the same fencing token (or either carries none),
// forming one read-modify-write operation from the read's call to the
// write's return. A read that is not followed by such a write (the client
// lost its lock or its write was rejected or failed) is a plain read over its
// own interval. A write without a read is a blind write. A new read, an
// acquire or a release by the same client on the resource ends the pairing
// window (a renew does not).
//
// It is long because it is one pass over the history, whose rules read best
// in the order listed above.
func build(ops []Op) built {
	order := make([]int, len(ops))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(ops[a].Call, ops[b].Call) })

	clients := map[string]int{}
	for _, op := range ops {
		clients[op.Client] = 0
	}
	names := make([]string, 0, len(clients))
	for c := range clients {
		names = append(names, c)
	}
	slices.Sort(names)
	for i, c := range names {
		clients[c] = i
	}

	b := built{tokens: []string{""}, clients: clients}
	tokenIDs := map[string]int32{}
	tokenID := func(t string, forAcquire bool) int32 {
		if t == "" {
			if forAcquire {
				return tokenUnknown
			}
			return tokenNone
		}
		id, ok := tokenIDs[t]
		if !ok {
			id = int32(len(b.tokens))
			tokenIDs[t] = id
			b.tokens = append(b.tokens, t)
		}
		return id
	}

	type key struct{ model, resource string }
	byKey := map[key][]porcupine.Operation{}
	add := func(model, resource string, in *minput, idx ...int) {
		meta := opMeta{idx: idx}
		for _, i := range idx {
			meta.ops = append(meta.ops, ops[i])
		}
		in.client = meta.ops[0].Client
		byKey[key{model, resource}] = append(byKey[key{model, resource}], porcupine.Operation{
			ClientId: clients[in.client], Input: in, Call: in.call, Return: in.ret, Metadata: meta,
		})
	}
	type ckey struct{ client, resource string }
	pending := map[ckey]int{} // unpaired successful reads
	flush := func(k ckey) {
		ri, ok := pending[k]
		if !ok {
			return
		}
		delete(pending, k)
		r := ops[ri]
		add(ModelResource, k.resource, &minput{kind: kRMW, readOK: true, readVal: *r.Output.Value, call: r.Call, ret: r.ret(never)}, ri)
	}

	for _, i := range order {
		op := ops[i]
		ck := ckey{op.Client, op.Resource}
		ret := op.ret(never)
		switch op.Op {
		case OpAcquire:
			flush(ck)
			if op.Outcome != OK {
				continue
			}
			ttl := seconds(op.Output.TTL)
			if ttl == 0 {
				ttl = seconds(op.Input.TTL)
			}
			in := &minput{kind: kAcquire, outcome: OK, ttl: ttl, call: op.Call, ret: ret,
				token: tokenID(op.Output.LockToken, true), fencing: op.Output.FencingToken}
			add(ModelLock, op.Resource, in, i)
		case OpRelease, OpRenew:
			if op.Op == OpRelease {
				flush(ck) // a renew stays within the lock cycle
			}
			if op.Outcome == Fail && !ClaimsNotHeld(op.Output) {
				continue
			}
			k := kRelease
			if op.Op == OpRenew {
				if op.Outcome == Unknown {
					continue
				}
				k = kRenew
			}
			ttl := seconds(op.Output.TTL)
			if ttl == 0 {
				ttl = seconds(op.Input.TTL)
			}
			add(ModelLock, op.Resource, &minput{kind: k, outcome: op.Outcome, claim: op.Outcome == Fail,
				token: tokenID(op.Input.LockToken, false), ttl: ttl, call: op.Call, ret: ret}, i)
		case OpRead:
			flush(ck)
			if op.Outcome == OK && !op.Output.Rejected && op.Output.Value != nil {
				pending[ck] = i
			}
		case OpWrite:
			ri, paired := pending[ck]
			r := ops[ri]
			if paired && r.Input.FencingToken != 0 && op.Input.FencingToken != 0 && r.Input.FencingToken != op.Input.FencingToken {
				flush(ck)
				paired = false
			}
			applied := op.Input.Value != nil && !op.Output.Rejected && op.Outcome != Fail
			if !applied {
				flush(ck) // only a read, over the read's own interval
				continue
			}
			in := &minput{kind: kRMW, write: writeOK, writeVal: *op.Input.Value, call: op.Call, ret: ret}
			if op.Outcome == Unknown {
				in.write = writeUnknown
			}
			if paired {
				delete(pending, ck)
				in.readOK, in.readVal, in.call = true, *r.Output.Value, r.Call
				add(ModelResource, op.Resource, in, ri, i)
			} else {
				add(ModelResource, op.Resource, in, i)
			}
		}
	}
	rest := make([]ckey, 0, len(pending))
	for k := range pending {
		rest = append(rest, k)
	}
	slices.SortFunc(rest, func(a, b ckey) int { return cmp.Compare(ops[pending[a]].Call, ops[pending[b]].Call) })
	for _, k := range rest {
		flush(k)
	}

	keys := make([]key, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.model != b.model {
			return strings.Compare(a.model, b.model) // "lock" < "resource"
		}
		return strings.Compare(a.resource, b.resource)
	})
	for i, k := range keys {
		pops := byKey[k]
		for _, p := range pops {
			p.Input.(*minput).part = i
		}
		b.parts = append(b.parts, partition{model: k.model, resource: k.resource, ops: pops})
	}
	return b
}
