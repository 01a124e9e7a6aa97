package history

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// ParseError is a problem on one line of a history file. It wraps
// ErrInvalid.
type ParseError struct {
	Line    int
	Problem string
}

func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Problem) }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ParseError) Unwrap() error { return ErrInvalid }

// maxLine bounds one line of history.jsonl.
const maxLine = 1 << 20

// WriteJSONL writes ops as JSON lines: history.jsonl, one operation a line.
func WriteJSONL(w io.Writer, ops []Op) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range ops {
		if err := enc.Encode(&ops[i]); err != nil {
			return fmt.Errorf("history: write op %d: %w", i, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("history: write: %w", err)
	}
	return nil
}

// ReadJSONL parses a history written by WriteJSONL. It is strict: unknown
// fields, wrong types, trailing data, unknown op kinds, bad outcomes, a
// return before its call, a missing return for ok/fail and a return for
// unknown are errors of type *ParseError ("line N: problem"). Blank lines
// are skipped.
func ReadJSONL(r io.Reader) ([]Op, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxLine)
	var ops []Op
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var op Op
		if err := dec.Decode(&op); err != nil {
			return nil, &ParseError{Line: line, Problem: err.Error()}
		}
		if dec.More() {
			return nil, &ParseError{Line: line, Problem: "trailing data after the operation"}
		}
		if err := op.Validate(); err != nil {
			return nil, &ParseError{Line: line, Problem: err.Error()}
		}
		ops = append(ops, op)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &ParseError{Line: line + 1, Problem: fmt.Sprintf("line longer than %d bytes", maxLine)}
		}
		return nil, fmt.Errorf("history: read: %w", err)
	}
	return ops, nil
}

// SortByCall sorts ops by call time, keeping the order of equal calls: a
// history read back from a Recorder's Sink (written as operations end) in
// the Recorder's own order.
func SortByCall(ops []Op) {
	slices.SortStableFunc(ops, func(a, b Op) int { return cmp.Compare(a.Call, b.Call) })
}
