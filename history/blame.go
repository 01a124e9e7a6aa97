package history

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"
)

// recoveries are fault kinds that end faults rather than cause them; they
// are never blamed.
var recoveries = map[string]bool{"heal": true, "resume": true, "restart": true}

// blamedFault is a fault that overlaps an explanation's operations.
type blamedFault struct {
	Annotation
	id     int
	kind   string
	end    int64    // End, or the end of the history for a fault that never ended
	client string   // the involved client it hit, "" for a fault on a server component
	names  []string // the components named by its target
}

// names splits a fault target into component names: "[etcd-2] | [etcd-1
// lockserver-1]" -> etcd-2, etcd-1, lockserver-1; "lockserver-1<->etcd-2" ->
// lockserver-1, etcd-2.
func names(target string) []string {
	f := strings.FieldsFunc(target, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' && r != '.' && r != ':' &&
			r != '-' // "a<->b" and "a->b" leave "<" and ">" as separators, "-" stays in names
	})
	var out []string
	for _, n := range f {
		n = strings.Trim(n, "-")
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// faultKind is the annotation's fault kind: Fault, or the first word of its
// label.
func faultKind(a Annotation) string {
	if a.Fault != "" {
		return a.Fault
	}
	k, _, _ := strings.Cut(strings.TrimSpace(a.Label), " ")
	return k
}

// span is the time from the earliest call to the latest return (end for an
// unknown outcome) of ops.
func span(ops []Op, end int64) (lo, hi int64) {
	lo, hi = math.MaxInt64, math.MinInt64
	for _, op := range ops {
		lo = min(lo, op.Call)
		hi = max(hi, op.ret(end))
	}
	return lo, hi
}

// blame returns the IDs of the faults that overlap the explanation's
// operations and concern a component involved in them:
//
//   - a fault whose target names a client of the operations (a pause, a
//     clock skew) counts when its window overlaps that client's operations;
//   - a fault on any other component (an etcd member, a lock server, the
//     balancer, a link between them) counts when its window overlaps the
//     operations at all: the history does not record which lock server or
//     member served a request, so any of them may have;
//   - a fault that names only clients not in the operations (a client of
//     the history, or any name starting with "client") does not count, nor
//     does a recovery (heal, resume, restart).
func blame(anns []Annotation, ops []Op, clients map[string]bool, end int64) ([]int, []blamedFault) {
	ids := []int{}
	var out []blamedFault
	lo, hi := span(ops, end)
	for i, a := range anns {
		f := blamedFault{Annotation: a, id: a.id(i), kind: faultKind(a), end: a.End, names: names(a.Target)}
		if recoveries[f.kind] || len(f.names) == 0 {
			continue
		}
		if f.end <= a.Start {
			f.end = max(end, a.Start)
		}
		hit := false
		server := false
		for _, n := range f.names {
			if !clients[n] && !strings.HasPrefix(n, "client") {
				server = true
				continue
			}
			var mine []Op
			for _, op := range ops {
				if op.Client == n {
					mine = append(mine, op)
				}
			}
			if len(mine) == 0 {
				continue
			}
			if cl, ch := span(mine, end); a.Start <= ch && f.end >= cl {
				hit, f.client = true, n
				break
			}
		}
		if !hit && server && f.client == "" && a.Start <= hi && f.end >= lo {
			hit = true
		}
		if hit && !slices.Contains(ids, f.id) {
			ids = append(ids, f.id)
			out = append(out, f)
		}
	}
	return ids, out
}

// leases returns the facts about the leases in play: for the lock model,
// those of the acquires and releases in ops; for the resource model, those
// of the grants of the fencing tokens ops carried.
func leases(model string, ops, all []Op) []Lease {
	type key struct {
		client, resource string
		fencing          int64
		token            string
	}
	var want []key
	for _, op := range ops {
		var k key
		switch {
		case model == ModelLock && op.Op == OpAcquire && op.Outcome == OK && op.Output.LockToken != "":
			k = key{token: op.Output.LockToken, resource: op.Resource}
		case model == ModelLock && op.Input.LockToken != "":
			k = key{token: op.Input.LockToken, resource: op.Resource}
		case model == ModelResource && op.Input.FencingToken > 0:
			k = key{client: op.Client, resource: op.Resource, fencing: op.Input.FencingToken}
		default:
			continue
		}
		if !slices.Contains(want, k) {
			want = append(want, k)
		}
	}
	var out []Lease
	for _, k := range want {
		i := slices.IndexFunc(all, func(op Op) bool {
			if op.Op != OpAcquire || op.Outcome != OK || op.Resource != k.resource {
				return false
			}
			if k.token != "" {
				return op.Output.LockToken == k.token
			}
			return op.Client == k.client && op.Output.FencingToken == k.fencing
		})
		if i >= 0 {
			out = append(out, lease(all[i], all))
		}
	}
	slices.SortStableFunc(out, func(a, b Lease) int { return cmp.Compare(a.Granted, b.Granted) })
	return out
}

// lease gathers the facts about the lease acq granted.
func lease(acq Op, all []Op) Lease {
	ttl := seconds(acq.Output.TTL)
	if ttl == 0 {
		ttl = seconds(acq.Input.TTL)
	}
	granted := acq.ret(acq.Call)
	l := Lease{Client: acq.Client, Resource: acq.Resource, FencingToken: acq.Output.FencingToken,
		Acquired: acq.Call, Granted: granted, TTL: time.Duration(ttl),
		ExpiresAfter: acq.Call + ttl, ExpiredBy: granted + ttl}
	tok := acq.Output.LockToken
	if tok == "" {
		return l
	}
	open := false
	for _, op := range all {
		if op.Resource != acq.Resource || op.Input.LockToken != tok {
			continue
		}
		switch {
		case op.Op == OpRenew && op.Outcome == OK:
			rttl := seconds(op.Output.TTL)
			if rttl == 0 {
				rttl = seconds(op.Input.TTL)
			}
			l.ExpiresAfter = max(l.ExpiresAfter, op.Call+rttl)
			l.ExpiredBy = max(l.ExpiredBy, op.ret(op.Call)+rttl)
		case op.Op == OpRenew && op.Outcome == Unknown:
			open = true
		case op.Op == OpRelease && op.Outcome == OK && (l.Released == nil || op.Call < *l.Released):
			l.Released = &op.Call
		}
	}
	if open {
		l.ExpiredBy = 0
	}
	return l
}
