package run

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/scenarios"
	"github.com/locksim/locksim/sim"
)

// Report is the outcome of one scenario file: one VariantReport per variant.
type Report struct {
	Scenario    string          `json:"scenario"`
	File        string          `json:"file"`
	Description string          `json:"description,omitempty"`
	Seed        int64           `json:"seed"`
	Pass        bool            `json:"pass"`
	Variants    []VariantReport `json:"variants"`
}

// VariantReport is what one run of the schedule showed.
type VariantReport struct {
	Variant    string            `json:"variant"`
	Fencing    bool              `json:"fencing"`
	Unsafe     string            `json:"unsafe,omitempty"`
	LockServer string            `json:"lockServer,omitempty"` // which lock server ran: locksim's own, a command, a function
	Pass       bool              `json:"pass"`
	Expect     map[string]string `json:"expect,omitempty"`
	Failures   []string          `json:"failures,omitempty"`
	Lock       history.Verdict   `json:"lock"`
	Resource   history.Verdict   `json:"resource"`
	Check      history.Result    `json:"check"`
	Resolved   int               `json:"resolvedUnknowns"`
	// Unexplained are the grants etcd made to acquires that were answered
	// with a definite failure (history.Unexplained): a broken promise of
	// the lock server, which fails the run unless it is a negative control.
	Unexplained []history.Grant `json:"unexplainedGrants,omitempty"`
	Latency     Latency         `json:"acquireLatency"`
	Faults      []faults.Event  `json:"faults"`
	Duration    time.Duration   `json:"durationNs"`
	Runtime     []RuntimeSample `json:"runtime"`
	Dir         string          `json:"dir,omitempty"`
	HistoryPath string          `json:"historyPath,omitempty"`
	HTMLPath    string          `json:"htmlPath,omitempty"`

	// Balancers are the VRRP transitions of a group of balancers, and
	// VIPMoves how often their virtual address changed owner.
	Balancers []sim.BalancerEvent `json:"balancers,omitempty"`
	VIPMoves  uint64              `json:"vipMoves,omitempty"`
}

// RuntimeSample is the process's goroutine count and heap at one moment of
// a run: a soak's samples must stay flat.
type RuntimeSample struct {
	At         time.Duration `json:"atNs"`
	Goroutines int           `json:"goroutines"`
	HeapMB     float64       `json:"heapMB"` // heap in use, garbage included
	// LiveHeapMB and LiveHeapPeakMB are, in long runs only, the lowest and
	// highest heap still reachable after a forced GC, sampled every
	// liveHeapEvery since the previous RuntimeSample (and at it). The
	// lowest is the floor a leak raises; the highest adds whatever a
	// compaction or a check had in flight at that instant.
	LiveHeapMB     float64 `json:"liveHeapMB,omitempty"`
	LiveHeapPeakMB float64 `json:"liveHeapPeakMB,omitempty"`
}

// liveHeapEvery is how often a long run samples its live heap.
const liveHeapEvery = 10 * time.Second

// sampleRuntime samples the runtime; with lh (long runs) it also samples
// the live heap and reports lh's floor and peak since its last report.
func sampleRuntime(at time.Duration, lh *liveHeap) RuntimeSample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := RuntimeSample{At: at, Goroutines: runtime.NumGoroutine(), HeapMB: float64(ms.HeapInuse) / (1 << 20)}
	if lh != nil {
		lh.sample()
		s.LiveHeapMB, s.LiveHeapPeakMB = lh.floor, lh.peak
		*lh = liveHeap{}
	}
	return s
}

// liveHeap is the lowest and highest live heap sampled since its last
// report. Each sample forces a garbage collection, to tell live memory from
// garbage: long runs only, every liveHeapEvery, so the cost to the workload
// is small.
type liveHeap struct {
	floor, peak float64
	n           int
}

func (l *liveHeap) sample() {
	// What a forced collection marked live: HeapAlloc after it would also
	// count what other goroutines allocated since.
	runtime.GC()
	heap := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(heap)
	mb := float64(heap[0].Value.Uint64()) / (1 << 20)
	if l.n == 0 || mb < l.floor {
		l.floor = mb
	}
	l.peak = max(l.peak, mb)
	l.n++
}

// Latency holds percentiles of successful acquires, in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50Ms"`
	P95   float64 `json:"p95Ms"`
	P99   float64 `json:"p99Ms"`
	Max   float64 `json:"maxMs"`
}

// expectations compares a check result with what the scenario expects.
func expectations(want scenarios.Expect, got history.Result) (map[string]string, []string) {
	exp := map[string]string{}
	var fails []string
	check := func(name, want string, got history.Verdict) {
		if want == "" {
			return
		}
		exp[name] = want
		if string(got) != want {
			fails = append(fails, fmt.Sprintf("%s: expected %s, got %s", name, want, got))
		}
	}
	check("lock", want.Lock, got.Lock)
	check("resource", want.Resource, got.Resource)
	if want.MaxUnknown != nil {
		exp["maxUnknown"] = fmt.Sprint(*want.MaxUnknown)
		if n := got.Counts.Unknown(); n > *want.MaxUnknown {
			fails = append(fails, fmt.Sprintf("unknown outcomes: expected at most %d, got %d", *want.MaxUnknown, n))
		}
	}
	return exp, fails
}

// unexplainedFailure is the failure a run reports for grants etcd made to
// acquires answered "no effect" ("" when there are none, or when the lock
// server is a deliberately unsafe negative control, which breaks promises
// on purpose).
func unexplainedFailure(gs []history.Grant, unsafe string) string {
	if len(gs) == 0 || unsafe != "" {
		return ""
	}
	parts := make([]string, len(gs))
	for i, g := range gs {
		parts[i] = fmt.Sprintf("%s on %s #%d seen at %.2fs", g.Owner, g.Resource, g.Revision, time.Duration(g.Seen).Seconds())
	}
	return fmt.Sprintf("etcd granted %d lock(s) to acquires that were answered with a definite failure (no effect): %s",
		len(gs), strings.Join(parts, "; "))
}

func acquireLatency(ops []history.Op) Latency {
	var ds []float64
	for _, op := range ops {
		if op.Op == "acquire" && op.Outcome == history.OK && op.Return != nil {
			ds = append(ds, float64(*op.Return-op.Call)/1e6)
		}
	}
	slices.Sort(ds)
	l := Latency{Count: len(ds)}
	if len(ds) == 0 {
		return l
	}
	pct := func(p float64) float64 { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	l.P50, l.P95, l.P99, l.Max = pct(0.50), pct(0.95), pct(0.99), ds[len(ds)-1]
	return l
}

func writeHistory(path string, ops []history.Op) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := history.WriteJSONL(f, ops); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
