package scenarios

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/locksim/locksim/internal/words"
)

// ErrInvalid is wrapped by every error about a malformed scenario file.
var ErrInvalid = errors.New("scenarios: invalid scenario")

// maxErrors bounds how many problems one Parse reports.
const maxErrors = 20

// Error is one problem in a scenario file.
type Error struct {
	File    string
	Line    int // 1-based; 0 when the problem has no line
	Problem string
}

// Error returns "file:line: problem".
func (e *Error) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Problem)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Problem)
}

// Unwrap returns ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// ErrorList is every problem found in one file, ordered by line. Its
// message has one "file:line: problem" per line; errors.As finds the
// *Error values and errors.Is finds ErrInvalid.
type ErrorList []*Error

// Error returns one "file:line: problem" per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual errors.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// problems collects errors for one file.
type problems struct {
	file string
	list ErrorList
}

func (p *problems) add(line int, format string, args ...any) {
	if len(p.list) >= maxErrors {
		return
	}
	p.list = append(p.list, &Error{File: p.file, Line: line, Problem: fmt.Sprintf(format, args...)})
}

// err returns the collected problems sorted by line, or nil.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	slices.SortStableFunc(p.list, func(a, b *Error) int { return a.Line - b.Line })
	return p.list
}

// oneOf renders "want one of a, b, c".
func oneOf(items []string) string { return words.OneOf(items) }

// suggest returns ` + "`" + `did you mean "x"?` + "`" + ` for a near miss, or the list of
// allowed words.
func suggest(got string, allowed []string) string { return words.Suggest(got, allowed) }

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
