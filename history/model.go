package history

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The two porcupine models, lock and resource, share one state type and one
// porcupine.Model so that a single HTML visualization shows both; every
// partition holds the operations of one model on one resource.
//
// Both models are nondeterministic (an unknown outcome may or may not have
// taken effect; a lease may or may not have expired). The porcupine state is
// therefore a small sorted set of plain states (a power-set construction like
// porcupine.NondeterministicModel.ToModel, with cheaper Equal and Hash).

// Model names, as used in Result and Details.
const (
	ModelLock     = "lock"
	ModelResource = "resource"
)

// never is the return time of an operation whose outcome is unknown: it may
// take effect at any time after its call.
const never = math.MaxInt64

// notHeldCodes are the error codes of a failed release or renew that claim
// "this token does not hold the lock" (HTTP 409). A failure with another
// code (unavailable, rate limited, bad request, ...) is a rejected request
// that changed nothing and claims nothing. A failure with neither code nor
// error text is taken as a claim too.
var notHeldCodes = map[string]bool{
	"not_held": true, "not_holder": true, "lock_lost": true, "lost": true,
	"expired": true, "conflict": true, "lock_not_held": true,
}

// ClaimsNotHeld reports whether a failed release or renew with this output
// claims that its token did not hold the lock (see the package doc).
func ClaimsNotHeld(out Output) bool {
	if out.Code == "" {
		return out.Error == ""
	}
	return notHeldCodes[out.Code]
}

type kind uint8

const (
	kAcquire kind = iota
	kRelease
	kRenew
	kRMW
)

type writeKind uint8

const (
	writeNone writeKind = iota
	writeOK
	writeUnknown
)

// Token ids in the lock state: 0 is "free", tokenUnknown is a holder whose
// token nobody learned (an acquire with unknown outcome), tokenNone is a
// release or renew that sent no token.
const (
	tokenUnknown int32 = -1
	tokenNone    int32 = -2
)

// minput is the porcupine input of one operation (output is unused: the
// outcome, call and return times are all in here).
type minput struct {
	part    int
	kind    kind
	client  string
	outcome Outcome
	claim   bool  // failed release/renew claims "not held"
	token   int32 // lock token id
	fencing int64 // acquire: granted fencing token (0 = not reported)
	ttl     int64 // ns: granted (acquire) or renewed (renew) TTL
	call    int64
	ret     int64 // never when unknown

	readOK   bool
	readVal  int64
	write    writeKind
	writeVal int64
}

// mstate is one possible state of a partition. Lock partitions use holder,
// fence and at; resource partitions use known and value.
type mstate struct {
	holder int32 // 0 free, tokenUnknown, or a token id
	fence  int64 // highest fencing token granted so far (a lower bound after an unknown grant)
	// at is, while held, the earliest time the holder's lease can expire;
	// while free, the earliest time the lock became free. Both are lower
	// bounds on the time of the next grant.
	at int64
	// floor is a lower bound on the real time of the current point of the
	// linearization, raised when a lease must have expired (a grant or a
	// "not held" answer after a lease); every later operation must return
	// at or after it.
	floor int64
	known bool // resource: value known (the initial value is unknown)
	value int64
}

func (s mstate) compare(o mstate) int {
	return cmp.Or(cmp.Compare(s.holder, o.holder), cmp.Compare(s.fence, o.fence), cmp.Compare(s.at, o.at), cmp.Compare(s.floor, o.floor),
		cmpBool(s.known, o.known), cmp.Compare(s.value, o.value))
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	default:
		return -1
	}
}

// stepLock returns every state the lock can be in after op, from s.
func stepLock(s mstate, in *minput) []mstate {
	free := func(at int64) mstate { return mstate{fence: s.fence, at: at, floor: s.floor} }
	if in.ret < s.floor {
		return nil // the op returned before a point the linearization already passed
	}
	switch in.kind {
	case kAcquire: // always OK: see buildOps for failed and unknown acquires
		if in.ret < s.floor {
			return nil
		}
		n := mstate{holder: in.token, fence: in.fencing, at: max(in.call, s.at) + in.ttl, floor: s.floor}
		if s.holder != 0 {
			if in.ret < s.at {
				return nil // granted while the previous lease cannot have expired
			}
			n.floor = max(s.floor, s.at) // the grant happened after the lease expired
		}
		if in.fencing == 0 {
			n.fence = s.fence + 1 // not reported: some larger token
		} else if in.fencing <= s.fence {
			return nil // fencing token did not increase
		}
		return []mstate{n}
	case kRelease, kRenew:
		holder := s.holder == in.token && in.token > 0
		switch in.outcome {
		case OK:
			if !holder {
				return nil // only the holder's release or renew succeeds
			}
			if in.kind == kRelease {
				return []mstate{free(max(in.call, 0))}
			}
			n := s
			n.at = max(s.at, in.call+in.ttl)
			return []mstate{n}
		case Fail: // a claim: the token does not hold the lock
			if !holder {
				return []mstate{s}
			}
			if in.ret < s.at {
				return nil // the holder was told "not held" before its lease could expire
			}
			n := free(s.at)
			n.floor = max(s.floor, s.at) // the lease expired before this answer
			return []mstate{n}
		default: // unknown release (unknown renews are dropped: see buildOps)
			if !holder {
				return []mstate{s}
			}
			return []mstate{s, free(in.call)}
		}
	}
	return nil
}

// stepResource returns every state the register can be in after op, from s.
func stepResource(s mstate, in *minput) []mstate {
	val := func(v int64) mstate { return mstate{known: true, value: v} }
	if !in.readOK { // blind write
		if in.write == writeUnknown {
			return []mstate{s, val(in.writeVal)}
		}
		return []mstate{val(in.writeVal)}
	}
	if s.known && s.value != in.readVal {
		return nil // read a value that is not the current one: lost or overwritten update
	}
	switch in.write {
	case writeOK:
		return []mstate{val(in.writeVal)}
	case writeUnknown:
		return []mstate{val(in.readVal), val(in.writeVal)}
	default:
		return []mstate{val(in.readVal)}
	}
}

// stateSet is the porcupine state: sorted, without duplicates, never empty
// once stepped.
type stateSet []mstate

func step(state, input any) (bool, any) {
	set := state.(stateSet)
	in := input.(*minput)
	var next stateSet
	for _, s := range set {
		var got []mstate
		if in.kind == kRMW {
			got = stepResource(s, in)
		} else {
			got = stepLock(s, in)
		}
		next = append(next, got...)
	}
	if len(next) == 0 {
		return false, nil
	}
	slices.SortFunc(next, mstate.compare)
	next = slices.Compact(next)
	return true, next
}

func equal(a, b any) bool { return slices.Equal(a.(stateSet), b.(stateSet)) }

func hash(state any) uint64 {
	h := uint64(14695981039346656037)
	mix := func(v uint64) { h = (h ^ v) * 1099511628211 }
	for _, s := range state.(stateSet) {
		mix(uint64(s.holder))
		mix(uint64(s.fence))
		mix(uint64(s.at))
		mix(uint64(s.floor))
		mix(uint64(s.value))
		if s.known {
			mix(1)
		}
	}
	return h
}

// newModel returns the combined porcupine model. tokens maps token ids to
// the tokens for descriptions.
func newModel(tokens []string) porcupine.Model {
	tok := func(id int32) string {
		switch {
		case id == tokenUnknown:
			return "?"
		case id > 0 && int(id) < len(tokens):
			return short(tokens[id])
		default:
			return "-"
		}
	}
	return porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			byPart := map[int][]porcupine.Operation{}
			for _, op := range h {
				p := op.Input.(*minput).part
				byPart[p] = append(byPart[p], op)
			}
			keys := make([]int, 0, len(byPart))
			for k := range byPart {
				keys = append(keys, k)
			}
			sort.Ints(keys)
			out := make([][]porcupine.Operation, len(keys))
			for i, k := range keys {
				out[i] = byPart[k]
			}
			return out
		},
		Init:  func() any { return stateSet{{}} },
		Step:  func(state, input, _ any) (bool, any) { return step(state, input) },
		Equal: equal,
		Hash:  hash,
		DescribeOperation: func(input, _ any) string {
			return describeInput(input.(*minput), tok)
		},
		DescribeState: func(state any) string {
			set := state.(stateSet)
			parts := make([]string, len(set))
			for i, s := range set {
				parts[i] = describeState(s, tok)
			}
			return strings.Join(parts, " | ")
		},
		DescribeOperationMetadata: func(m any) string {
			if m == nil {
				return ""
			}
			return fmt.Sprint(m)
		},
	}
}

func short(token string) string {
	if len(token) > 8 {
		return token[:8] + "…"
	}
	return token
}

func dur(ns int64) string {
	return time.Duration(ns).Round(time.Microsecond).String()
}

func describeInput(in *minput, tok func(int32) string) string {
	switch in.kind {
	case kAcquire:
		return fmt.Sprintf("%s acquire → ok token %s fencing %d ttl %s", in.client, tok(in.token), in.fencing, dur(in.ttl))
	case kRelease, kRenew:
		name := "release"
		if in.kind == kRenew {
			name = fmt.Sprintf("renew ttl %s", dur(in.ttl))
		}
		res := string(in.outcome)
		if in.outcome == Fail {
			res = "fail (not held)"
		}
		return fmt.Sprintf("%s %s %s → %s", in.client, name, tok(in.token), res)
	default:
		var b strings.Builder
		b.WriteString(in.client)
		if in.readOK {
			fmt.Fprintf(&b, " read %d", in.readVal)
		}
		switch in.write {
		case writeOK:
			fmt.Fprintf(&b, " write %d", in.writeVal)
		case writeUnknown:
			fmt.Fprintf(&b, " write %d (unknown)", in.writeVal)
		}
		return b.String()
	}
}

func describeState(s mstate, tok func(int32) string) string {
	switch {
	case s.known:
		return fmt.Sprintf("value %d", s.value)
	case s.holder != 0:
		return fmt.Sprintf("held by %s, fencing %d, expires ≥ %s, now ≥ %s", tok(s.holder), s.fence, dur(s.at), dur(s.floor))
	case s.fence != 0:
		return fmt.Sprintf("free since ≥ %s, last fencing %d", dur(s.at), s.fence)
	default:
		return "initial"
	}
}
