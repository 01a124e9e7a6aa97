package lockserver

import (
	"strconv"
	"strings"
	"unsafe"
)

// A fast path for the JSON bodies of the lock API: a flat object whose
// members are plain strings (printable ASCII, no escapes), numbers and
// booleans, each key once, decoded without reflection or allocation.
// Anything else — escapes, non-ASCII, null, nested values, a repeated key,
// a key encoding/json would match case-insensitively, a number out of
// range — is left to encoding/json (decodeStrict), so the fast path never
// accepts a body encoding/json would decode differently, and every error
// message and code comes from one place. FuzzFastDecodeAgrees checks that.

// jsonMember is one member of a flat object as scanned: raw is a string's
// contents (without quotes) or a number's or boolean's literal.
type jsonMember struct {
	key  []byte
	raw  []byte
	kind byte // 's' string, 'n' number, 'b' boolean
}

// maxMembers is the most members the fast path scans.
const maxMembers = 8

// scanFlatObject scans b as a flat JSON object into out and returns the
// members; ok is false when b is anything the fast path leaves to
// encoding/json. Keys and values are views of b.
func scanFlatObject(b []byte, out *[maxMembers]jsonMember) (members []jsonMember, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	n := 0
	if i < len(b) && b[i] == '}' {
		return out[:0], skipSpace(b, i+1) == len(b)
	}
	for {
		if n == maxMembers {
			return nil, false
		}
		key, j, ok := scanPlainString(b, i)
		if !ok {
			return nil, false
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return nil, false
		}
		m := jsonMember{key: key}
		switch c := b[i]; {
		case c == '"':
			s, j, ok := scanPlainString(b, i)
			if !ok {
				return nil, false
			}
			m.raw, m.kind, i = s, 's', j
		case c == '-' || (c >= '0' && c <= '9'):
			j, ok := scanNumber(b, i)
			if !ok {
				return nil, false
			}
			m.raw, m.kind, i = b[i:j], 'n', j
		case hasPrefix(b[i:], "true"):
			m.raw, m.kind, i = b[i:i+4], 'b', i+4
		case hasPrefix(b[i:], "false"):
			m.raw, m.kind, i = b[i:i+5], 'b', i+5
		default:
			return nil, false // null, objects, arrays, garbage
		}
		for _, prev := range out[:n] {
			if string(prev.key) == string(m.key) {
				return nil, false
			}
		}
		out[n] = m
		n++
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return out[:n], skipSpace(b, i+1) == len(b)
		default:
			return nil, false
		}
	}
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanPlainString scans a string literal at b[i] made of printable ASCII
// without escapes, returning its contents and the index after it.
func scanPlainString(b []byte, i int) (s []byte, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c > 0x7e:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// scanNumber scans a number with JSON's grammar at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (end int, ok bool) {
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

// float is a scanned number as encoding/json decodes it into a float64; ok
// is false when it does not fit (encoding/json then reports the error).
func (m jsonMember) float() (float64, bool) {
	f, err := strconv.ParseFloat(view(m.raw), 64)
	return f, err == nil
}

// int is a scanned number as encoding/json decodes it into an int64.
func (m jsonMember) int() (int64, bool) {
	n, err := strconv.ParseInt(view(m.raw), 10, 64)
	return n, err == nil
}

// str is a scanned string's value (a copy).
func (m jsonMember) str() string { return string(m.raw) }

// is reports whether the member's key is name; like reports whether
// encoding/json would match it to a field named name (case-insensitively).
func (m jsonMember) is(name string) bool   { return string(m.key) == name }
func (m jsonMember) like(name string) bool { return strings.EqualFold(view(m.key), name) }

// view is b as a string without a copy, for a call that does not keep it
// (a parse whose error is dropped): b must not change during the call.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
