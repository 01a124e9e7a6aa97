package history

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// DefaultExplainBudget bounds the explaining of a Check's violations when
// Options.ExplainBudget is zero.
const DefaultExplainBudget = 5 * time.Second

// Kind names the anomaly an Explanation shows.
type Kind string

// Kinds of anomaly. Each is decided from the explanation's operations alone
// (see classify), in this order of precedence.
const (
	// KindDoubleGrant: two tokens were granted the lock and both must have
	// held it at the same moment (each grant returned before the other's
	// lease could expire or be released).
	KindDoubleGrant Kind = "double-grant"
	// KindLostEarly: a holder was told its token did not hold the lock
	// before its lease could have expired (and before it released it): the
	// lock was taken away, typically by a grant to someone else that the
	// history does not show.
	KindLostEarly Kind = "lock-lost-early"
	// KindFencingBack: a grant's fencing token is not above the token of a
	// grant that returned before it was asked for.
	KindFencingBack Kind = "fencing-token-went-back"
	// KindNonHolder: a release or renew succeeded for a token that did not
	// hold the lock.
	KindNonHolder Kind = "release-by-non-holder"
	// KindStaleWrite: the resource accepted a write whose fencing token is
	// below one it had already accepted (a read or write that returned before
	// the write was sent): fencing would have rejected it.
	KindStaleWrite Kind = "stale-write-accepted"
	// KindLostUpdate: two read-modify-writes read the same value and both
	// wrote, so one update was lost.
	KindLostUpdate Kind = "lost-update"
	// KindPhantomRead: a read returned a value no operation of the history
	// wrote (at most the unknown initial value) when it can no longer be the
	// current one.
	KindPhantomRead Kind = "read-of-unwritten-value"
	// KindOther: none of the above; the operations still admit no legal order.
	KindOther Kind = "other"
)

// Explanation says why one partition (one model on one resource) is not
// linearizable: a small set of its operations that admits no legal order,
// the anomaly they show, the faults around them and the lease facts, in
// words.
type Explanation struct {
	Resource string `json:"resource"`
	Model    string `json:"model"` // ModelLock or ModelResource: which check caught it
	Kind     Kind   `json:"kind"`
	// Operations are the history records of the shrunk set, in call order,
	// as in history.jsonl (a read-modify-write is its read and its write),
	// and Index their positions in the history given to Check (the line of
	// history.jsonl, from 0): what a timeline highlights.
	Operations []Op  `json:"operations"`
	Index      []int `json:"index"`
	// Context are the writes, outside Operations, of values that
	// Operations read. The shrunk set was checked with each of them as a
	// blind write at some time within its own interval: whatever else they
	// did, no order explains Operations.
	Context []Op `json:"context,omitempty"`
	// Faults are the IDs of the faults (Options.Annotations) that overlap
	// the operations: see the package documentation.
	Faults []int `json:"faults"`
	// Leases are the facts about the leases of the tokens in play.
	Leases []Lease `json:"leases,omitempty"`
	Text   string  `json:"text"`
	// Truncated reports that the search stopped early (time budget, or a
	// candidate porcupine could not decide in time): a smaller set may
	// exist. Unproven reports that porcupine never decided any set, not even
	// the whole partition, within the budget: Operations are then the whole
	// partition, violated by Check's verdict alone.
	Truncated bool          `json:"truncated,omitempty"`
	Unproven  bool          `json:"unproven,omitempty"`
	Checks    int           `json:"checks"` // candidate sets porcupine checked
	Elapsed   time.Duration `json:"elapsedNs"`
	// VisualizationPath is porcupine's view of Operations and Context, with
	// the blamed faults, when Options.VisualizePath is set (not for an
	// Unproven explanation: the full view shows the same operations).
	VisualizationPath string `json:"visualizationPath,omitempty"`
}

// Lease is what the history says about one lease in play: when it began,
// when it could first have expired and when it must have.
type Lease struct {
	Client       string `json:"client"`
	Resource     string `json:"resource"`
	FencingToken int64  `json:"fencingToken,omitempty"`
	// Acquired is the acquire's call (the lease began no earlier) and
	// Granted its return (the client held the lock from then on).
	Acquired int64         `json:"acquiredNs"`
	Granted  int64         `json:"grantedNs"`
	TTL      time.Duration `json:"ttlNs"`
	// ExpiresAfter is the earliest time the lease can have expired: the
	// acquire's call plus TTL, pushed on by successful renews' calls.
	ExpiresAfter int64 `json:"expiresAfterNs"`
	// ExpiredBy is the latest: the grant's or the last successful renew's
	// return plus TTL; 0 when a renew with unknown outcome leaves it open.
	ExpiredBy int64 `json:"expiredByNs,omitempty"`
	// Released is the call of the token's successful release, if any.
	Released *int64 `json:"releasedNs,omitempty"`
}

// explainPath is where the view of the i-th explanation goes, next to the
// full one: history.html -> history.explain-1.html.
func explainPath(visualizePath string, i int) string {
	base := strings.TrimSuffix(visualizePath, ".html")
	return fmt.Sprintf("%s.explain-%d.html", base, i+1)
}

// explainAll explains the violated partitions in parallel until the budget
// runs out.
func explainAll(ops []Op, b built, model porcupine.Model, verdicts []Verdict, opts Options) []Explanation {
	budget := opts.ExplainBudget
	if budget <= 0 {
		budget = DefaultExplainBudget
	}
	deadline := time.Now().Add(budget)
	var todo []int
	for i, v := range verdicts {
		if v == Violated {
			todo = append(todo, i)
		}
	}
	out := make([]*Explanation, len(todo))
	work := make(chan int, len(todo))
	for i := range todo {
		work <- i
	}
	close(work)
	end := historyEnd(ops)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(todo)) {
		wg.Go(func() {
			for i := range work {
				s := newShrinker(model, b.parts[todo[i]], perCheck(time.Until(deadline)), func() bool { return !time.Now().Before(deadline) })
				out[i] = explainPartition(ops, s, b.parts[todo[i]], opts.Annotations, end)
			}
		})
	}
	wg.Wait()
	var res []Explanation
	for _, e := range out {
		if e != nil {
			res = append(res, *e)
		}
	}
	return res
}

// perCheck bounds porcupine on one candidate: a small fraction of the
// budget, so that one hard candidate cannot eat it all.
func perCheck(left time.Duration) time.Duration {
	return max(min(left/10, 2*time.Second), 20*time.Millisecond)
}

// explainPartition explains partition p of ops with shrinker s (nil when
// p turns out linearizable).
func explainPartition(ops []Op, s *shrinker, p partition, anns []Annotation, end int64) *Explanation {
	start := time.Now()
	got, ok := s.run()
	if !ok {
		return nil
	}
	e := describe(ops, p, got, anns, end)
	e.Checks = s.checks
	e.Truncated = s.stopped || s.undecided > 0 || !got.proven
	e.Unproven = !got.proven
	e.Elapsed = time.Since(start)
	switch {
	case e.Unproven:
		e.Text += fmt.Sprintf(" (porcupine decided no set within the time budget (%d checks in %s): these are all the operations of the partition, violated by the check's verdict.)",
			e.Checks, e.Elapsed.Round(time.Millisecond))
	case e.Truncated:
		e.Text += fmt.Sprintf(" (The search for a smaller set stopped early after %d checks in %s: a smaller one may exist.)",
			e.Checks, e.Elapsed.Round(time.Millisecond))
	}
	return &e
}

// describe turns a shrunk set into an Explanation (without the search
// statistics).
func describe(ops []Op, p partition, got shrunk, anns []Annotation, end int64) Explanation {
	e := Explanation{Resource: p.resource, Model: p.model}
	e.Operations, e.Index = records(got.core)
	e.Context, _ = records(got.context)
	c := classify(p.model, got.core, got.context, ops)
	e.Kind = c.kind
	e.Leases = leases(p.model, e.Operations, ops)
	var blamed []blamedFault
	e.Faults, blamed = blame(anns, e.Operations, clientsOf(ops), end)
	e.Text = words(e, c, blamed)
	return e
}

// records returns the history records of porcupine operations and their
// positions in the history, in call order.
func records(pops []porcupine.Operation) ([]Op, []int) {
	type rec struct {
		op Op
		i  int
	}
	var rs []rec
	for _, op := range pops {
		m := op.Metadata.(opMeta)
		for k := range m.ops {
			rs = append(rs, rec{m.ops[k], m.idx[k]})
		}
	}
	slices.SortStableFunc(rs, func(a, b rec) int { return cmp.Compare(a.op.Call, b.op.Call) })
	ops, idx := make([]Op, len(rs)), make([]int, len(rs))
	for k, r := range rs {
		ops[k], idx[k] = r.op, r.i
	}
	return ops, idx
}

func historyEnd(ops []Op) int64 {
	var end int64
	for _, op := range ops {
		end = max(end, op.Call, op.ret(0))
	}
	return end
}

func clientsOf(ops []Op) map[string]bool {
	out := map[string]bool{}
	for _, op := range ops {
		out[op.Client] = true
	}
	return out
}

// Visualize writes porcupine's view of the explanation's operations and
// context to path, with those of anns whose ID is in e.Faults drawn in.
// It works on an Explanation read back from JSON too.
func (e Explanation) Visualize(path string, anns []Annotation) error {
	var blamed []Annotation
	for i, a := range anns {
		if slices.Contains(e.Faults, a.id(i)) {
			blamed = append(blamed, a)
		}
	}
	ops := append(slices.Clone(e.Operations), e.Context...)
	b := build(ops)
	model := newModel(b.tokens)
	var all []porcupine.Operation
	for _, p := range b.parts {
		all = append(all, p.ops...)
	}
	_, info := porcupine.CheckOperationsVerbose(model, all, DefaultTimeout)
	info.AddAnnotations(annotations(blamed, b.clients))
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		return fmt.Errorf("history: visualize explanation: %w", err)
	}
	return nil
}
