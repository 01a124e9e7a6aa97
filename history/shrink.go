package history

import (
	"cmp"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// The shrinker looks for a small set of a violated partition's operations
// that is still not linearizable: delta debugging (Zeller's ddmin) over the
// units of the partition, each candidate checked by porcupine.
//
// A candidate must be a faithful witness: if the whole partition had a
// linearization, every candidate built from it must have one too, or the
// shrinker would "explain" a violation by the operations it removed (two
// grants that look overlapping once the release between them is gone; a
// read of 57 once the write of 57 is gone). Plain deletion does not have
// that property in either model, so candidates are built in ways that do:
//
//   - Lock model: a unit is a whole lock cycle, every operation carrying one
//     lock token (its acquire, renews, releases and "not held" answers).
//     Removing a cycle is like its acquire never having been granted, which
//     only ever allows more (the argument that lets build drop unknown
//     acquires). The operations of a token with no acquire in the partition
//     are units of their own. After ddmin, renews and "not held" answers,
//     whose removal only allows more, and operations called after every
//     other one returned (last in every order) are dropped one by one when
//     the rest is still not linearizable. A set without any "not held"
//     answer is preferred: when the partition is still not linearizable
//     without them, the search runs without them, so that a double grant is
//     shown as two grants rather than as the answer it caused.
//   - Resource model: a unit is one porcupine operation (a read-modify-write,
//     a plain read or a blind write). Removing a read allows more. Removing a
//     write does not: a kept operation may have read its value. So every
//     removed operation that wrote a value some kept operation read stays in
//     the candidate as a blind write of that value over its own interval
//     (its read no longer checked): the context. A blind write of a value
//     nobody in the candidate reads only forbids more, so the others go.
//     After ddmin, kept read-modify-writes whose read does not matter are
//     turned into blind writes one by one, the same weakening.
//
// Only candidates porcupine proves Illegal are kept; one that times out
// counts as linearizable, so the result is always a proven violation (or the
// whole partition when nothing smaller was proven).

// unit is a group of a partition's operations kept or removed together.
type unit struct {
	ops  []int // indices into the partition's operations
	call int64 // earliest call
}

// shrinker shrinks one violated partition.
type shrinker struct {
	model    porcupine.Model
	ops      []porcupine.Operation
	resource bool
	units    []unit
	// perCheck bounds one porcupine check; expired reports that the whole
	// search is out of time.
	perCheck time.Duration
	expired  func() bool

	// base are operations left out of every candidate (see run); weak are
	// resource operations whose read is no longer checked (blind writes).
	base, weak map[int]bool

	checks    int  // candidates checked
	undecided int  // candidates porcupine could not decide in perCheck
	stopped   bool // the budget ran out before the search finished
}

func newShrinker(model porcupine.Model, p partition, perCheck time.Duration, expired func() bool) *shrinker {
	s := &shrinker{model: model, ops: p.ops, resource: p.model == ModelResource, perCheck: perCheck, expired: expired}
	if s.resource {
		for i, op := range p.ops {
			s.units = append(s.units, unit{ops: []int{i}, call: op.Call})
		}
	} else {
		byToken := map[int32]int{}
		for i, op := range p.ops {
			tok := op.Input.(*minput).token
			if j, ok := byToken[tok]; ok && tok > 0 {
				s.units[j].ops = append(s.units[j].ops, i)
				s.units[j].call = min(s.units[j].call, op.Call)
				continue
			}
			if tok > 0 {
				byToken[tok] = len(s.units)
			}
			s.units = append(s.units, unit{ops: []int{i}, call: op.Call})
		}
	}
	slices.SortStableFunc(s.units, func(a, b unit) int { return cmp.Compare(a.call, b.call) })
	return s
}

// shrunk is what the shrinker found: the kept operations and the context
// (removed operations kept as blind writes), as porcupine operations of the
// candidate, and whether the set is proven to be a violation.
type shrunk struct {
	core, context []porcupine.Operation
	proven        bool
}

// run shrinks the partition. It returns ok = false when porcupine finds the
// whole partition linearizable (nothing to explain).
func (s *shrinker) run() (shrunk, bool) {
	all := make([]int, len(s.units))
	for i := range all {
		all[i] = i
	}
	proven := false
	if !s.expired() {
		switch s.check(s.candidate(all, nil)) {
		case porcupine.Ok:
			return shrunk{}, false
		case porcupine.Illegal:
			proven = true
		}
	} else {
		s.stopped = true
	}
	if !s.resource {
		claims := map[int]bool{}
		for i, op := range s.ops {
			if op.Input.(*minput).claim {
				claims[i] = true
			}
		}
		if len(claims) > 0 && s.illegal(all, claims) {
			s.base, proven = claims, true
		}
	}
	kept, p := s.window(all)
	kept, p2 := s.ddmin(kept)
	proven = proven || p || p2
	var dropped map[int]bool
	var p3 bool
	if s.resource {
		p3 = s.weaken(kept)
	} else {
		dropped, p3 = s.dropOps(kept)
	}
	proven = proven || p3
	core, context := s.split(kept, dropped)
	return shrunk{core: core, context: context, proven: proven}, true
}

// check runs porcupine on a candidate within perCheck.
func (s *shrinker) check(cand []porcupine.Operation) porcupine.CheckResult {
	s.checks++
	r := porcupine.CheckOperationsTimeout(s.model, cand, s.perCheck)
	if r == porcupine.Unknown {
		s.undecided++
	}
	return r
}

// illegal reports whether the candidate of the kept units (minus the
// dropped operations) is proven not linearizable.
func (s *shrinker) illegal(kept []int, dropped map[int]bool) bool {
	if s.expired() {
		s.stopped = true
		return false
	}
	return s.check(s.candidate(kept, dropped)) == porcupine.Illegal
}

// members returns the operation indices of the kept units, without the
// dropped ones.
func (s *shrinker) members(kept []int, dropped map[int]bool) map[int]bool {
	in := map[int]bool{}
	for _, u := range kept {
		for _, i := range s.units[u].ops {
			if !dropped[i] && !s.base[i] {
				in[i] = true
			}
		}
	}
	return in
}

// split returns the candidate of the kept units as core and context.
func (s *shrinker) split(kept []int, dropped map[int]bool) (core, context []porcupine.Operation) {
	in := s.members(kept, dropped)
	for i, op := range s.ops {
		switch {
		case in[i] && s.weak[i]:
			core = append(core, blind(op))
		case in[i]:
			core = append(core, op)
		}
	}
	return core, s.context(in)
}

// blind returns a resource operation as a blind write: its read no longer
// checked, its record the write alone.
func blind(op porcupine.Operation) porcupine.Operation {
	m := *op.Input.(*minput)
	m.readOK, m.readVal = false, 0
	meta := op.Metadata.(opMeta)
	op.Input = &m
	op.Metadata = opMeta{ops: meta.ops[len(meta.ops)-1:], idx: meta.idx[len(meta.idx)-1:]}
	return op
}

// candidate is the porcupine history of the kept units: their operations
// and, in the resource model, the context.
func (s *shrinker) candidate(kept []int, dropped map[int]bool) []porcupine.Operation {
	core, context := s.split(kept, dropped)
	return append(core, context...)
}

// context returns, for the resource model, every operation outside in that
// wrote a value some operation in in read, as a blind write.
func (s *shrinker) context(in map[int]bool) []porcupine.Operation {
	if !s.resource {
		return nil
	}
	read := map[int64]bool{}
	for i := range in {
		if m := s.ops[i].Input.(*minput); m.readOK && !s.weak[i] {
			read[m.readVal] = true
		}
	}
	var out []porcupine.Operation
	for i, op := range s.ops {
		m := op.Input.(*minput)
		if in[i] || m.write == writeNone || !read[m.writeVal] {
			continue
		}
		out = append(out, blind(op))
	}
	return out
}

// window narrows the units (in call order) to a proven-illegal run: the
// shortest prefix, then the shortest suffix of it. The boundaries are found
// by binary search; every set it keeps was checked, except the whole.
func (s *shrinker) window(all []int) ([]int, bool) {
	proven := false
	lo, hi := 1, len(all)
	for lo < hi && !s.stopped {
		mid := (lo + hi) / 2
		if s.illegal(all[:mid], nil) {
			hi, proven = mid, true
		} else {
			lo = mid + 1
		}
	}
	end := hi
	lo, hi = 0, end-1
	for lo < hi && !s.stopped {
		mid := (lo + hi + 1) / 2
		if s.illegal(all[mid:end], nil) {
			lo, proven = mid, true
		} else {
			hi = mid - 1
		}
	}
	return all[lo:end], proven
}

// ddmin is Zeller's minimizing delta debugging over units: it returns a set
// from which no single unit can be removed (1-minimal) unless the budget
// ran out first.
func (s *shrinker) ddmin(c []int) ([]int, bool) {
	proven := false
	n := 2
	for len(c) >= 2 && !s.stopped {
		chunks := chunk(c, n)
		reduced := false
		for _, ch := range chunks {
			if s.illegal(ch, nil) {
				c, n, reduced, proven = ch, 2, true, true
				break
			}
		}
		if !reduced && len(chunks) > 2 { // with two chunks the complements are the chunks
			for i := range chunks {
				rest := without(chunks, i)
				if s.illegal(rest, nil) {
					c, n, reduced, proven = rest, max(n-1, 2), true, true
					break
				}
			}
		}
		if !reduced {
			if n >= len(c) {
				break
			}
			n = min(2*n, len(c))
		}
	}
	return c, proven
}

// chunk splits c into n nearly equal consecutive parts.
func chunk(c []int, n int) [][]int {
	out := make([][]int, 0, n)
	for i := range n {
		lo, hi := i*len(c)/n, (i+1)*len(c)/n
		if hi > lo {
			out = append(out, c[lo:hi])
		}
	}
	return out
}

// without returns every chunk but the i-th, concatenated.
func without(chunks [][]int, i int) []int {
	var out []int
	for j, ch := range chunks {
		if j != i {
			out = append(out, ch...)
		}
	}
	return out
}

// dropOps removes, one at a time, lock operations of the kept units whose
// removal can only allow more (see the comment at the top of this file),
// as long as the rest is still proven not linearizable.
func (s *shrinker) dropOps(kept []int) (map[int]bool, bool) {
	dropped := map[int]bool{}
	proven := false
	for changed := true; changed && !s.stopped; {
		changed = false
		in := s.members(kept, dropped)
		for i := range s.ops {
			if !in[i] || !s.droppable(i, in) {
				continue
			}
			dropped[i] = true
			if s.illegal(kept, dropped) {
				changed, proven = true, true
				break
			}
			delete(dropped, i)
		}
	}
	return dropped, proven
}

// weaken turns, one at a time, kept read-modify-writes into blind writes
// (their read no longer checked, which only allows more) as long as the
// rest is still proven not linearizable: the explanation then shows only
// the reads that matter.
func (s *shrinker) weaken(kept []int) bool {
	s.weak = map[int]bool{}
	proven := false
	in := s.members(kept, nil)
	for i := range s.ops {
		if m := s.ops[i].Input.(*minput); !in[i] || !m.readOK || m.write == writeNone || s.stopped {
			continue
		}
		s.weak[i] = true
		if s.illegal(kept, nil) {
			proven = true
			continue
		}
		delete(s.weak, i)
	}
	return proven
}

// droppable reports whether removing lock operation i from the set in can
// only allow more: a successful renew, a "not held" answer, or an operation
// called after every other one in the set returned.
func (s *shrinker) droppable(i int, in map[int]bool) bool {
	m := s.ops[i].Input.(*minput)
	if m.kind == kRenew && m.outcome == OK || m.claim {
		return true
	}
	for j := range in {
		if j != i && s.ops[j].Return > s.ops[i].Call {
			return false
		}
	}
	return len(in) > 1
}
