package history

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Verdict is the outcome of one check.
type Verdict string

// Verdicts. Unknown (declared with the outcomes) means the checker ran out
// of time: it is never reported as linearizable. Skipped means there was
// nothing to check.
const (
	Linearizable Verdict = "linearizable"
	Violated     Verdict = "violated"
	Skipped      Verdict = "skipped"
)

// DefaultTimeout bounds a Check when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Options configure Check.
type Options struct {
	// Timeout bounds the linearizability search (default DefaultTimeout).
	// Writing the visualization comes on top of it.
	Timeout time.Duration
	// VisualizePath is where porcupine's HTML visualization is written;
	// "" writes none.
	VisualizePath string
	// Annotations are drawn on the visualization (fault windows) and are
	// the faults an explanation may blame.
	Annotations []Annotation
	// Explain asks for an Explanation of every violated partition
	// (Result.Explanations), found within ExplainBudget (default
	// DefaultExplainBudget) on top of Timeout. With VisualizePath set, each
	// explanation's view is written next to it (history.explain-1.html, ...).
	Explain       bool
	ExplainBudget time.Duration
}

// Annotation is a window of time (ns on the history's clock) drawn on the
// visualization, such as a fault. A Target naming a client of the history
// puts it on that client's row; any other target gets a row of its own.
//
// For explanations, an annotation is a fault: ID identifies it in
// Explanation.Faults (zero: its position in Options.Annotations plus one),
// Fault is its kind ("pause", "crash", "partition", ...; empty: the first
// word of Label), Target names who was hit ("client-1", "etcd-2",
// "[etcd-2] | [etcd-1 etcd-3 lockserver-1]") and Source where it came from
// ("step 3 (file.yaml:14)", "nemesis"). An End at or before Start means the
// fault never ended.
type Annotation struct {
	ID          int    `json:"id,omitempty"`
	Label       string `json:"label"`
	Fault       string `json:"fault,omitempty"`
	Target      string `json:"target,omitempty"`
	Start       int64  `json:"start"`
	End         int64  `json:"end"`
	Description string `json:"description,omitempty"`
	Source      string `json:"source,omitempty"`
}

// id is the annotation's ID, or i+1 for the i-th annotation without one.
func (a Annotation) id(i int) int {
	if a.ID != 0 {
		return a.ID
	}
	return i + 1
}

// Result is what Check found.
type Result struct {
	Lock     Verdict `json:"lock"`
	Resource Verdict `json:"resource"`
	// Overlap is informational: how long clients believed they held a lock
	// at the same time.
	Overlap OverlapStats `json:"overlap"`
	Counts  Counts       `json:"counts"`
	// LockOps and ResourceOps are the operations given to porcupine
	// (after dropping no-ops and pairing reads with writes).
	LockOps           int           `json:"lockOps"`
	ResourceOps       int           `json:"resourceOps"`
	Elapsed           time.Duration `json:"elapsedNs"`
	VisualizationPath string        `json:"visualizationPath,omitempty"`
	// Details are human-readable reasons, one per resource that is not
	// linearizable, plus any problem writing the visualization.
	Details []string `json:"details,omitempty"`
	// Explanations say why, one per violated partition, when
	// Options.Explain is set.
	Explanations []Explanation `json:"explanations,omitempty"`
}

// OK reports whether no check found a violation or ran out of time.
func (r Result) OK() bool {
	good := func(v Verdict) bool { return v == Linearizable || v == Skipped }
	return good(r.Lock) && good(r.Resource)
}

// Check checks ops against the lock and resource models (see the package
// documentation), partitioned by resource, within opts.Timeout. It is long
// because it runs its phases in order: build the partitions, search them in
// parallel, draw porcupine's view, explain what is violated.
func Check(ops []Op, opts Options) Result {
	start := time.Now()
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	deadline := start.Add(timeout)
	res := Result{Counts: countOps(ops), Overlap: overlap(ops)}
	b := build(ops)
	model := newModel(b.tokens)
	verdicts := make([]Verdict, len(b.parts))
	for _, p := range b.parts {
		if p.model == ModelLock {
			res.LockOps += len(p.ops)
		} else {
			res.ResourceOps += len(p.ops)
		}
	}

	illegalSomewhere := false
	if opts.VisualizePath != "" {
		var all []porcupine.Operation
		for _, p := range b.parts {
			all = append(all, p.ops...)
		}
		t0 := time.Now()
		r, info := porcupine.CheckOperationsVerbose(model, all, timeout)
		timedOut := time.Since(t0) >= timeout
		partials := info.PartialLinearizations()
		for i, p := range b.parts {
			if i < len(partials) && complete(partials[i], len(p.ops)) {
				verdicts[i] = Linearizable
			} else if r == porcupine.Illegal && !timedOut {
				verdicts[i] = Violated
			}
		}
		illegalSomewhere = r == porcupine.Illegal
		info.AddAnnotations(annotations(opts.Annotations, b.clients))
		if err := porcupine.VisualizePath(model, info, opts.VisualizePath); err != nil {
			res.Details = append(res.Details, fmt.Sprintf("visualization not written: %v", err))
		} else {
			res.VisualizationPath = opts.VisualizePath
		}
	}

	checkRest(model, b.parts, verdicts, deadline)

	if illegalSomewhere {
		// porcupine found a violation, but timed out before we could say
		// where: if the undecided partitions are all of one model, that
		// model is violated.
		models := map[string]bool{}
		found := false
		for i, v := range verdicts {
			found = found || v == Violated
			if v == Unknown {
				models[b.parts[i].model] = true
			}
		}
		if !found && len(models) == 1 {
			for i, v := range verdicts {
				if v == Unknown {
					verdicts[i] = Violated
				}
			}
		}
	}

	res.Lock = combine(ModelLock, b.parts, verdicts)
	res.Resource = combine(ModelResource, b.parts, verdicts)
	for i, p := range b.parts {
		switch verdicts[i] {
		case Violated:
			res.Details = append(res.Details, fmt.Sprintf("%s %s: violated: no linearization of its %d operations", p.model, p.resource, len(p.ops)))
		case Unknown:
			res.Details = append(res.Details, fmt.Sprintf("%s %s: unknown: check timed out after %s (%d operations)", p.model, p.resource, timeout, len(p.ops)))
		}
	}
	if opts.Explain {
		res.Explanations = explainAll(ops, b, model, verdicts, opts)
		if opts.VisualizePath != "" {
			for i := range res.Explanations {
				e := &res.Explanations[i]
				if e.Unproven {
					continue
				}
				path := explainPath(opts.VisualizePath, i)
				if err := e.Visualize(path, opts.Annotations); err != nil {
					res.Details = append(res.Details, fmt.Sprintf("explanation view not written: %v", err))
					continue
				}
				e.VisualizationPath = path
			}
		}
	}
	res.Elapsed = time.Since(start)
	return res
}

// checkRest decides every partition without a verdict, in parallel, until
// the deadline; partitions left undecided are Unknown.
func checkRest(model porcupine.Model, parts []partition, verdicts []Verdict, deadline time.Time) {
	todo := make(chan int, len(parts))
	for i, v := range verdicts {
		if v == "" {
			todo <- i
		}
	}
	close(todo)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(todo)) {
		wg.Go(func() {
			for i := range todo {
				left := time.Until(deadline)
				if left <= 0 {
					verdicts[i] = Unknown
					continue
				}
				switch porcupine.CheckOperationsTimeout(model, parts[i].ops, left) {
				case porcupine.Ok:
					verdicts[i] = Linearizable
				case porcupine.Illegal:
					verdicts[i] = Violated
				default:
					verdicts[i] = Unknown
				}
			}
		})
	}
	wg.Wait()
}

func complete(partials [][]int, n int) bool {
	for _, p := range partials {
		if len(p) == n {
			return true
		}
	}
	return false
}

func combine(model string, parts []partition, verdicts []Verdict) Verdict {
	got := Skipped
	for i, p := range parts {
		if p.model != model {
			continue
		}
		switch v := verdicts[i]; {
		case v == Violated:
			return Violated
		case v == Unknown || got == Unknown:
			got = Unknown
		default:
			got = Linearizable
		}
	}
	return got
}

func annotations(as []Annotation, clients map[string]int) []porcupine.Annotation {
	out := make([]porcupine.Annotation, 0, len(as))
	for _, a := range as {
		pa := porcupine.Annotation{
			Start: a.Start, End: a.End, Description: a.Label,
			Details:         fmt.Sprintf("%s (%s → %s) %s", a.Target, dur(a.Start), dur(a.End), a.Description),
			BackgroundColor: "#f6d5d5",
		}
		if id, ok := clients[a.Target]; ok {
			pa.ClientId = id
		} else if a.Target != "" {
			pa.Tag = "fault: " + a.Target
		} else {
			pa.Tag = "faults"
		}
		out = append(out, pa)
	}
	return out
}
