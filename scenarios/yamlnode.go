package scenarios

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decoder turns yaml.Nodes into typed values, recording problems with
// their line and the line of every key path it sees.
type decoder struct {
	*problems
	pos map[string]int
}

// field is one key of a mapping.
type field struct {
	key   string
	line  int
	value *yaml.Node
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names a node's type for "got ..." messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return strconv.Quote(v)
	default:
		return "an unsupported YAML node"
	}
}

// join builds a key path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapping reads a mapping with the allowed keys, in file order. A null node
// is an empty mapping. Unknown and duplicate keys are problems.
func (d *decoder) mapping(n *yaml.Node, path string, allowed []string, hint string) ([]field, bool) {
	n = resolve(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		what := path
		if what == "" {
			what = "a scenario"
		}
		d.add(n.Line, "%s: want a mapping (key: value), got %s", what, describe(n))
		return nil, false
	}
	var fields []field
	seen := map[string]int{}
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.add(k.Line, "%s: keys must be words, got %s", orTop(path), describe(k))
			ok = false
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.add(k.Line, "duplicate key %q in %s (first on line %d)", k.Value, orTop(path), first)
			ok = false
			continue
		}
		seen[k.Value] = k.Line
		if allowed != nil && !slices.Contains(allowed, k.Value) {
			msg := fmt.Sprintf("unknown key %q in %s (%s)", k.Value, orTop(path), suggest(k.Value, allowed))
			if hint != "" {
				msg += "; " + hint
			}
			d.add(k.Line, "%s", msg)
			ok = false
			continue
		}
		d.pos[join(path, k.Value)] = k.Line
		fields = append(fields, field{key: k.Value, line: k.Line, value: v})
	}
	return fields, ok
}

func orTop(path string) string {
	if path == "" {
		return "the scenario"
	}
	return path
}

// scalar returns a non-null scalar or records a problem.
func (d *decoder) scalar(n *yaml.Node, path, want string) (*yaml.Node, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.add(n.Line, "%s: want %s, got %s", path, want, describe(n))
		return nil, false
	}
	return n, true
}

func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	s, ok := d.scalar(n, path, "a string")
	if !ok {
		return "", false
	}
	return s.Value, true
}

func (d *decoder) integer(n *yaml.Node, path string) (int64, bool) {
	s, ok := d.scalar(n, path, "a whole number")
	if !ok {
		return 0, false
	}
	var v int64
	if s.ShortTag() != "!!int" || s.Decode(&v) != nil {
		d.add(s.Line, "%s: want a whole number, got %s", path, describe(s))
		return 0, false
	}
	return v, true
}

// smallInt reads an integer that fits comfortably in an int.
func (d *decoder) smallInt(n *yaml.Node, path string) (int, bool) {
	v, ok := d.integer(n, path)
	if !ok {
		return 0, false
	}
	if v > math.MaxInt32 || v < math.MinInt32 {
		d.add(resolve(n).Line, "%s: %d is out of range", path, v)
		return 0, false
	}
	return int(v), true
}

func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	s, ok := d.scalar(n, path, "true or false")
	if !ok {
		return false, false
	}
	var v bool
	if s.ShortTag() != "!!bool" || s.Decode(&v) != nil {
		d.add(s.Line, "%s: want true or false, got %s", path, describe(s))
		return false, false
	}
	return v, true
}

const durationWant = `a duration like "300ms" or "2s", or a number of seconds`

// duration reads a Go duration ("300ms") or a number of seconds (2, 0.5).
// Negative values are problems unless signed is set.
func (d *decoder) duration(n *yaml.Node, path string, signed bool) (time.Duration, bool) {
	s, ok := d.scalar(n, path, durationWant)
	if !ok {
		return 0, false
	}
	v, err := parseDuration(s)
	if err != "" {
		d.add(s.Line, "%s: %s", path, err)
		return 0, false
	}
	if v < 0 && !signed {
		d.add(s.Line, "%s: must not be negative, got %s", path, s.Value)
		return 0, false
	}
	return v, true
}

// parseDuration returns the duration of a scalar or a problem.
func parseDuration(s *yaml.Node) (time.Duration, string) {
	bad := fmt.Sprintf("want %s, got %s", durationWant, describe(s))
	var secs float64
	switch s.ShortTag() {
	case "!!int", "!!float":
		if s.Decode(&secs) != nil {
			return 0, bad
		}
	case "!!str":
		text := strings.TrimSpace(s.Value)
		if dur, err := time.ParseDuration(text); err == nil {
			if dur > MaxDuration || dur < -MaxDuration {
				return 0, fmt.Sprintf("%s is too long (at most %s)", s.Value, MaxDuration)
			}
			return dur, ""
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			if hint := unitHint(text); hint != "" {
				return 0, bad + " (" + hint + ")"
			}
			return 0, bad
		}
		secs = f
	default:
		return 0, bad
	}
	if math.IsNaN(secs) || math.IsInf(secs, 0) {
		return 0, bad
	}
	if math.Abs(secs) > MaxDuration.Seconds() {
		return 0, fmt.Sprintf("%s is too long (at most %s)", s.Value, MaxDuration)
	}
	return time.Duration(math.Round(secs * float64(time.Second))), ""
}

// unitHint explains common mistakes in duration units.
func unitHint(text string) string {
	for _, u := range []string{"sec", "secs", "second", "seconds", "min", "mins", "minute", "minutes", "msec", "millis"} {
		if strings.HasSuffix(text, u) {
			return `units are ns, us, ms, s, m, h`
		}
	}
	return ""
}

// strList reads a list of strings with at most max entries.
func (d *decoder) strList(n *yaml.Node, path string, max int) ([]string, bool) {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.add(n.Line, "%s: want a list like [a, b], got %s", path, describe(n))
		return nil, false
	}
	if len(n.Content) > max {
		d.add(n.Line, "%s: at most %d entries, got %d", path, max, len(n.Content))
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for i, item := range n.Content {
		itemPath := fmt.Sprintf("%s[%d]", path, i)
		d.pos[itemPath] = resolve(item).Line
		s, good := d.str(item, itemPath)
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}
