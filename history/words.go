package history

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// titles are the kinds as a student reads them.
var titles = map[Kind]string{
	KindDoubleGrant: "Double grant",
	KindLostEarly:   "Lock taken away before its lease ended",
	KindFencingBack: "Fencing token went back",
	KindNonHolder:   "Release or renew by a non-holder",
	KindStaleWrite:  "Stale write accepted",
	KindLostUpdate:  "Lost update",
	KindPhantomRead: "Read of a value nobody wrote",
	KindOther:       "Violation",
}

// maxTold is the most operations the words tell one by one.
const maxTold = 12

// teller formats times on the history's clock in seconds: with one
// decimal, or with three (milliseconds) when everything the explanation
// tells happened within half a second.
type teller struct{ prec int }

func newTeller(ops []Op, blamed []blamedFault) teller {
	lo, hi := span(ops, 0)
	for _, f := range blamed {
		lo, hi = min(lo, f.Start), max(hi, f.Start)
	}
	if hi-lo < 500_000_000 {
		return teller{prec: 3}
	}
	return teller{prec: 1}
}

func (t teller) secs(ns int64) string { return fmt.Sprintf("%.*f s", t.prec, float64(ns)/1e9) }

func (t teller) num(ns int64) string { return fmt.Sprintf("%.*f", t.prec, float64(ns)/1e9) }

// event is one thing that happened, for the narration: "<who> <verb>
// [with #tok] <when>". Events of one subject in a row share one subject.
type event struct {
	at   int64
	who  string // "" for a clause with its own subject (a fault on a server)
	verb string
	tok  int64
	when string
	// own: verb is about the subject's belongings ("lease ended"): "its
	// lease ended" within a run, "client-1's lease ended" at its start.
	own bool
}

// words tells the explanation in sentences a student can follow: the
// operations, grants, lease ends and faults in time order, then what went
// wrong.
func words(e Explanation, c classified, blamed []blamedFault) string {
	t := newTeller(append(slices.Clone(e.Operations), e.Context...), blamed)
	var evs []event
	for _, op := range e.Operations {
		evs = append(evs, t.opEvents(op)...)
	}
	for _, op := range e.Context {
		ev := t.opEvents(op)
		for i := range ev {
			ev[i].tok = 0
		}
		evs = append(evs, ev...)
	}
	if e.Model == ModelResource {
		evs = append(evs, t.leaseEvents(e)...)
	}
	server := false
	for _, f := range blamed {
		evs = append(evs, t.faultEvent(f))
		server = server || f.client == ""
	}
	slices.SortStableFunc(evs, func(a, b event) int { return cmp.Compare(a.at, b.at) })

	var b strings.Builder
	fmt.Fprintf(&b, "%s on %s, caught by the %s model: ", titles[e.Kind], e.Resource, e.Model)
	if len(e.Operations) > maxTold {
		lo, hi := span(e.Operations, 0)
		fmt.Fprintf(&b, "%d operations from %s to %s, too many to tell one by one", len(e.Operations), t.secs(lo), t.secs(hi))
	} else {
		b.WriteString(narrate(evs))
	}
	b.WriteString(". ")
	concl := t.conclusion(e, c)
	b.WriteString(strings.ToUpper(concl[:1]) + concl[1:])
	b.WriteString(".")
	if server {
		b.WriteString(" The history does not record which lock server or etcd member served each request: a fault on one of them is listed when its window overlaps these operations.")
	}
	return b.String()
}

// narrate joins events into one sentence; consecutive events of one
// subject share it, and a fencing token is named once per subject run.
func narrate(evs []event) string {
	var parts []string
	for i := 0; i < len(evs); {
		j := i + 1
		for j < len(evs) && evs[i].who != "" && evs[j].who == evs[i].who {
			j++
		}
		var clauses []string
		var lastTok int64
		for k, ev := range evs[i:j] {
			s := ev.verb
			if ev.own && k > 0 {
				s = "its " + s
			}
			if ev.tok > 0 && ev.tok != lastTok {
				s += fmt.Sprintf(" with #%d", ev.tok)
				lastTok = ev.tok
			}
			if ev.when != "" {
				s += " " + ev.when
			}
			clauses = append(clauses, s)
		}
		part := strings.Join(clauses, ", ")
		switch {
		case evs[i].who != "" && evs[i].own:
			part = evs[i].who + "'s " + part
		case evs[i].who != "":
			part = evs[i].who + " " + part
		}
		parts = append(parts, part)
		i = j
	}
	return strings.Join(parts, "; ")
}

// opEvents narrates one history record.
func (t teller) opEvents(op Op) []event {
	at := func(ns int64) string { return "at " + t.secs(ns) }
	ret := op.ret(op.Call)
	ev := event{who: op.Client, at: ret, when: at(ret)}
	switch {
	case op.Op == OpAcquire:
		ev.verb, ev.tok = "got the lock", op.Output.FencingToken
	case op.Op == OpRelease && op.Outcome == OK:
		ev.verb, ev.at, ev.when = "released it", op.Call, at(op.Call)
	case op.Op == OpRenew && op.Outcome == OK:
		ev.verb, ev.at, ev.when = "renewed its lease", op.Call, at(op.Call)
	case (op.Op == OpRelease || op.Op == OpRenew) && op.Outcome == Unknown:
		ev.verb, ev.at, ev.when = "asked to "+op.Op+" it", op.Call, at(op.Call)+" (no answer)"
	case op.Op == OpRelease || op.Op == OpRenew:
		ev.verb, ev.when = "was told", at(ret)+" that it did not hold the lock"
	case op.Op == OpRead && op.Output.Value != nil:
		ev.verb, ev.tok = fmt.Sprintf("read %d", *op.Output.Value), op.Input.FencingToken
	case op.Op == OpWrite && op.Input.Value != nil && op.Outcome == Unknown:
		ev.verb, ev.tok, ev.at, ev.when = fmt.Sprintf("wrote %d", *op.Input.Value), op.Input.FencingToken, op.Call, at(op.Call)+" (no answer)"
	case op.Op == OpWrite && op.Input.Value != nil:
		ev.verb, ev.tok = fmt.Sprintf("wrote %d", *op.Input.Value), op.Input.FencingToken
	default:
		return nil
	}
	return []event{ev}
}

// leaseEvents narrates, for a resource explanation, the grants of the
// tokens in play and the end of a lease its client still acted after.
func (t teller) leaseEvents(e Explanation) []event {
	var evs []event
	for _, l := range e.Leases {
		evs = append(evs, event{at: l.Granted, who: l.Client, verb: "got the lock", tok: l.FencingToken, when: "at " + t.secs(l.Granted)})
		var last int64
		for _, op := range e.Operations {
			if op.Client == l.Client && op.Input.FencingToken == l.FencingToken {
				last = max(last, op.Call)
			}
		}
		if l.ExpiredBy > 0 && l.ExpiredBy < last && (l.Released == nil || *l.Released > l.ExpiredBy) {
			evs = append(evs, event{at: l.ExpiredBy, who: l.Client, verb: "lease ended", own: true, when: "by " + t.secs(l.ExpiredBy)})
		}
	}
	return evs
}

// faultVerbs say what a fault did to its target.
var faultVerbs = map[string]string{
	"pause":      "was paused",
	"crash":      "was down",
	"partition":  "was partitioned",
	"delay":      "had its links delayed",
	"clock-skew": "ran on a skewed clock",
	"unsafe":     "ran a deliberately broken acquire",
}

func (t teller) faultEvent(f blamedFault) event {
	window := t.num(f.Start) + "–" + t.secs(f.end)
	src := ""
	switch {
	case strings.HasPrefix(f.Source, "step"):
		src = " by " + f.Source
	case f.Source != "":
		src = " (" + f.Source + ")"
	}
	verb, ok := faultVerbs[f.kind]
	if f.client != "" {
		if !ok {
			verb = "was hit by " + f.kind
		}
		return event{at: f.Start, who: f.client, verb: verb + " " + window + src}
	}
	target := f.Target
	if !ok {
		return event{at: f.Start, verb: fmt.Sprintf("%s %s %s%s", f.kind, target, window, src)}
	}
	return event{at: f.Start, verb: fmt.Sprintf("%s %s %s%s", target, verb, window, src)}
}

// recordsOf returns the history records of a porcupine operation.
func recordsOf(op *porcupine.Operation) []Op { return op.Metadata.(opMeta).ops }

// conclusion says what went wrong.
func (t teller) conclusion(e Explanation, c classified) string {
	switch c.kind {
	case KindDoubleGrant:
		a, b := recordsOf(c.a)[0], recordsOf(c.b)[0]
		ma := input(c.a)
		return fmt.Sprintf("%s was granted the lock at %s while %s still held it (its lease could not expire before %s and it had not released it): two holders at once",
			b.Client, t.secs(b.ret(b.Call)), a.Client, t.secs(ma.call+ma.ttl))
	case KindLostEarly:
		a, r := recordsOf(c.a)[0], recordsOf(c.b)[0]
		ma := input(c.a)
		return fmt.Sprintf("%s was told at %s that its token did not hold the lock, although its lease could not expire before %s and it had not released it: the lock was taken away early",
			r.Client, t.secs(r.ret(r.Call)), t.secs(ma.call+ma.ttl)) + fmt.Sprintf(" (granted at %s)", t.secs(a.ret(a.Call)))
	case KindFencingBack:
		a, b := recordsOf(c.a)[0], recordsOf(c.b)[0]
		return fmt.Sprintf("%s's fencing token #%d is not above #%d, granted to %s at %s before %s asked: fencing tokens must increase",
			b.Client, b.Output.FencingToken, a.Output.FencingToken, a.Client, t.secs(a.ret(a.Call)), b.Client)
	case KindNonHolder:
		r := recordsOf(c.a)[0]
		s := fmt.Sprintf("%s's %s at %s succeeded although its token did not hold the lock", r.Client, r.Op, t.secs(r.Call))
		if c.b != nil {
			b := recordsOf(c.b)[0]
			s += fmt.Sprintf(" (%s got it at %s)", b.Client, t.secs(b.ret(b.Call)))
		}
		return s
	case KindStaleWrite:
		rs := recordsOf(c.a)
		w := rs[len(rs)-1]
		s := fmt.Sprintf("nothing rejected %s's write of %d with #%d although #%d had been used at %s: a stale write was accepted",
			w.Client, *w.Input.Value, w.Input.FencingToken, c.newer.Input.FencingToken, t.secs(c.newer.ret(c.newer.Call)))
		if c.b != nil {
			other := recordsOf(c.b)[0].Client
			s += fmt.Sprintf(", and as %s had also written after reading %d, one update was lost", other, input(c.a).readVal)
		}
		return s
	case KindLostUpdate:
		a, b := recordsOf(c.a)[0], recordsOf(c.b)[0]
		if a.Client == b.Client {
			return fmt.Sprintf("%s read %d twice and wrote both times: one update was lost", a.Client, input(c.a).readVal)
		}
		return fmt.Sprintf("%s and %s both read %d and wrote: one update was lost", a.Client, b.Client, input(c.a).readVal)
	case KindPhantomRead:
		r := recordsOf(c.a)[0]
		return fmt.Sprintf("%s read %d at %s, which no operation of the history wrote (at most it was the initial value) and which could no longer be current",
			r.Client, input(c.a).readVal, t.secs(r.ret(r.Call)))
	default:
		if len(e.Context) > 0 {
			return fmt.Sprintf("no order of these %d operations (and of the %d writes of the values they read, each at some time during its own request) is legal in the %s model",
				len(e.Operations), len(e.Context), e.Model)
		}
		return fmt.Sprintf("no order of these %d operations is legal in the %s model", len(e.Operations), e.Model)
	}
}
