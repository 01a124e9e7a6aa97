package history

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Helpers to write histories by hand. Times are in milliseconds.

func ms(n int64) int64 { return n * 1_000_000 }

func ptr[T any](v T) *T { return &v }

func at(ret int64) *int64 { return ptr(ms(ret)) }

func acquireOK(client, res, token string, fencing int64, call, ret int64, ttl float64) Op {
	return Op{Client: client, Op: OpAcquire, Resource: res, Input: Input{TTL: ptr(ttl)},
		Output: Output{LockToken: token, FencingToken: fencing, TTL: ptr(ttl)},
		Call:   ms(call), Return: at(ret), Outcome: OK}
}

func acquireFail(client, res string, call, ret int64) Op {
	return Op{Client: client, Op: OpAcquire, Resource: res, Input: Input{TTL: ptr(1.0)},
		Output: Output{Error: "lock already held by another client"}, Call: ms(call), Return: at(ret), Outcome: Fail}
}

func acquireUnknown(client, res string, call int64, ttl float64) Op {
	return Op{Client: client, Op: OpAcquire, Resource: res, Input: Input{TTL: ptr(ttl)}, Call: ms(call), Outcome: Unknown}
}

func release(client, res, token string, call, ret int64, outcome Outcome, code string) Op {
	op := Op{Client: client, Op: OpRelease, Resource: res, Input: Input{LockToken: token}, Call: ms(call), Outcome: outcome}
	if outcome != Unknown {
		op.Return = at(ret)
	}
	if outcome == Fail {
		op.Output = Output{Code: code, Error: "failed"}
	}
	return op
}

func renew(client, res, token string, call, ret int64, outcome Outcome, ttl float64) Op {
	op := Op{Client: client, Op: OpRenew, Resource: res, Input: Input{LockToken: token, TTL: ptr(ttl)}, Call: ms(call), Outcome: outcome}
	if outcome != Unknown {
		op.Return = at(ret)
	}
	if outcome == Fail {
		op.Output = Output{Code: "not_held", Error: "lock not held"}
	}
	return op
}

func read(client, res string, fencing, call, ret, value int64) Op {
	return Op{Client: client, Op: OpRead, Resource: res, Input: Input{FencingToken: fencing},
		Output: Output{Value: ptr(value)}, Call: ms(call), Return: at(ret), Outcome: OK}
}

func readRejected(client, res string, fencing, call, ret int64) Op {
	return Op{Client: client, Op: OpRead, Resource: res, Input: Input{FencingToken: fencing},
		Output: Output{Rejected: true}, Call: ms(call), Return: at(ret), Outcome: Fail}
}

func write(client, res string, fencing, call, ret, value int64, outcome Outcome) Op {
	op := Op{Client: client, Op: OpWrite, Resource: res, Input: Input{FencingToken: fencing, Value: ptr(value)}, Call: ms(call), Outcome: outcome}
	if outcome != Unknown {
		op.Return = at(ret)
	}
	return op
}

func writeRejected(client, res string, fencing, call, ret, value int64) Op {
	op := write(client, res, fencing, call, ret, value, Fail)
	op.Output.Rejected = true
	return op
}

// readRun reads testdata/runs/NAME/history.jsonl: a history recorded by
// `locksim run` (trimmed).
func readRun(t testing.TB, name string) []Op {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "runs", name, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops, err := ReadJSONL(f)
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// readFaults reads the fault list of a recorded run (report.json's
// "faults") as annotations, the way a run hands them to Check.
func readFaults(t testing.TB, name string) []Annotation {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "runs", name, "faults.json"))
	if err != nil {
		t.Fatal(err)
	}
	var events []struct {
		ID                            int
		Fault, Resolved, Note, Source string
		StartNs, EndNs                int64
		Active                        bool
	}
	if err := json.Unmarshal(b, &events); err != nil {
		t.Fatal(err)
	}
	var out []Annotation
	for _, ev := range events {
		end := ev.EndNs
		if ev.Active {
			end = ev.StartNs
		}
		out = append(out, Annotation{ID: ev.ID, Fault: ev.Fault, Label: ev.Fault + " " + ev.Resolved, Target: ev.Resolved,
			Start: ev.StartNs, End: end, Description: ev.Note, Source: ev.Source})
	}
	return out
}
