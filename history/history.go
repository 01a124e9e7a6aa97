package history

import (
	"errors"
	"fmt"
)

// Outcome is what the client learned about an operation.
type Outcome string

// Outcomes.
const (
	OK   Outcome = "ok"
	Fail Outcome = "fail"
)

// Unknown is the outcome of a request the client got no answer for that it
// could trust: it may or may not have taken effect; it is never folded into
// Fail. It is also the Verdict of a check that ran out of time. It is an
// untyped constant so that it serves as either.
const Unknown = "unknown"

// Valid reports whether o is one of OK, Fail and Unknown.
func (o Outcome) Valid() bool { return o == OK || o == Fail || o == Unknown }

// Operation kinds (Op.Op). Acquire, release and renew are lock operations;
// read and write are operations on the protected resource.
const (
	OpAcquire = "acquire"
	OpRelease = "release"
	OpRenew   = "renew"
	OpRead    = "read"
	OpWrite   = "write"
)

// ErrInvalid is wrapped by every error about a malformed history.
var ErrInvalid = errors.New("history: invalid history")

// Op is one recorded operation, one line of history.jsonl.
type Op struct {
	Client   string  `json:"client"`
	Op       string  `json:"op"` // acquire, release, renew, read, write
	Resource string  `json:"resource"`
	Input    Input   `json:"input"`
	Output   Output  `json:"output"`
	Call     int64   `json:"call"`             // ns since the run started (one monotonic clock)
	Return   *int64  `json:"return,omitempty"` // nil when the outcome is unknown
	Outcome  Outcome `json:"outcome"`
}

// Input holds the fields of the HTTP request body, in the API's units (seconds
// as float).
type Input struct {
	TTL          *float64 `json:"ttl,omitempty"`
	Timeout      *float64 `json:"timeout,omitempty"`
	LockToken    string   `json:"lockToken,omitempty"`
	FencingToken int64    `json:"fencingToken,omitempty"`
	Value        *int64   `json:"value,omitempty"`
}

// Output holds the fields of the HTTP response body.
type Output struct {
	LockToken    string   `json:"lockToken,omitempty"`
	FencingToken int64    `json:"fencingToken,omitempty"`
	ExpiresAt    string   `json:"expiresAt,omitempty"`
	TTL          *float64 `json:"ttl,omitempty"` // effective granted TTL, seconds
	Value        *int64   `json:"value,omitempty"`
	Rejected     bool     `json:"rejected,omitempty"` // stale fencing token
	Error        string   `json:"error,omitempty"`
	Code         string   `json:"code,omitempty"`
}

// IsLockOp reports whether kind is acquire, release or renew.
func IsLockOp(kind string) bool {
	return kind == OpAcquire || kind == OpRelease || kind == OpRenew
}

// IsResourceOp reports whether kind is read or write.
func IsResourceOp(kind string) bool { return kind == OpRead || kind == OpWrite }

// Validate reports the first problem with op, or nil. ReadJSONL applies it
// to every line.
func (op Op) Validate() error {
	switch {
	case op.Client == "":
		return errors.New("missing client")
	case !IsLockOp(op.Op) && !IsResourceOp(op.Op):
		return fmt.Errorf("unknown op %q", op.Op)
	case op.Resource == "":
		return errors.New("missing resource")
	case !op.Outcome.Valid():
		return fmt.Errorf("bad outcome %q", op.Outcome)
	case op.Call < 0:
		return fmt.Errorf("negative call time %d", op.Call)
	case op.Outcome == Unknown && op.Return != nil:
		return errors.New("return present for an unknown outcome")
	case op.Outcome != Unknown && op.Return == nil:
		return fmt.Errorf("missing return for outcome %q", op.Outcome)
	case op.Return != nil && *op.Return < op.Call:
		return fmt.Errorf("return %d before call %d", *op.Return, op.Call)
	}
	return nil
}

// ret is the op's return time, or end when the outcome is unknown.
func (op Op) ret(end int64) int64 {
	if op.Return == nil {
		return end
	}
	return *op.Return
}

// seconds converts an optional seconds value to nanoseconds (0 when nil).
func seconds(s *float64) int64 {
	if s == nil || *s <= 0 {
		return 0
	}
	return int64(*s * 1e9)
}

// String describes the record in one line for people: who did what with
// which token and value, when (seconds on the history's clock), and how it
// ended. "client-2 write order:1 57 with #112 (4.998–5.002 s, ok)".
func (op Op) String() string {
	s := op.Client + " " + op.Op + " " + op.Resource
	switch op.Op {
	case OpAcquire:
		if op.Output.FencingToken > 0 {
			s += fmt.Sprintf(" → #%d", op.Output.FencingToken)
		}
	case OpRead:
		if op.Output.Value != nil {
			s += fmt.Sprintf(" → %d", *op.Output.Value)
		}
	case OpWrite:
		if op.Input.Value != nil {
			s += fmt.Sprintf(" %d", *op.Input.Value)
		}
	}
	if op.Input.FencingToken > 0 {
		s += fmt.Sprintf(" with #%d", op.Input.FencingToken)
	}
	when := fmt.Sprintf("%.3f–%.3f s", float64(op.Call)/1e9, float64(op.ret(op.Call))/1e9)
	if op.Return == nil {
		when = fmt.Sprintf("from %.3f s", float64(op.Call)/1e9)
	}
	end := string(op.Outcome)
	switch {
	case op.Output.Rejected:
		end += " rejected"
	case op.Output.Code != "":
		end += " " + op.Output.Code
	}
	return fmt.Sprintf("%s (%s, %s)", s, when, end)
}
