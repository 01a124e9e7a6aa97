package faults

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Fault names of a Step (SPEC §5).
const (
	FaultCrash     = "crash"
	FaultRestart   = "restart"
	FaultPause     = "pause"
	FaultResume    = "resume"
	FaultPartition = "partition"
	FaultDelay     = "delay"
	FaultHeal      = "heal"
	FaultClockSkew = "clock-skew"
)

var (
	// ErrInvalidStep reports a Step that cannot be applied (unknown fault, missing field).
	ErrInvalidStep = errors.New("faults: invalid step")
	// ErrUnknownMember reports a partition naming a component that is not in Env.Members.
	ErrUnknownMember = errors.New("faults: unknown member")
	// ErrConditionTimeout reports a Step whose When condition did not hold in time; the step is
	// then not applied.
	ErrConditionTimeout = errors.New("faults: condition not met in time")
)

// Step is one scripted fault. sim translates scenario steps (and Nemesis) into Steps.
//
// Targets may be concrete names ("etcd-2", "lockserver-1", "client-3") or roles containing a
// colon ("etcd:leader", "etcd:follower", "lockserver:any", "client:holder"); roles are resolved
// through Env.Resolve when the step fires.
type Step struct {
	At    time.Duration // offset from the run's start
	When  *Condition    // optional: after At, wait until this holds
	Fault string        // one of the Fault* constants

	Target string // crash, restart, pause, resume, clock-skew (the client)

	// Partition: exactly one of Isolate, Groups, Bridge or From/To; Bridge may come with two
	// Groups naming the halves explicitly.
	Isolate string
	Groups  [][]string
	Bridge  string
	From    string // also a delay's link when Link is empty
	To      string

	Link            string        // delay: "a->b" (one direction) or "a<->b" (both)
	Latency, Jitter time.Duration // delay

	For          time.Duration // how long the fault lasts; 0 = until undone by a later step or HealAll
	RestartAfter time.Duration // crash: restart after this long (takes precedence over For)
	Skew         time.Duration // clock-skew: offset added to the client's clock
	Note         string        // narration shown with the fault
	Source       string        // "step 3 (file.yaml:14)" or "nemesis"
}

// Condition makes a Step wait until, for example, a client holds the lock and has just read the
// protected resource. Its meaning is Env's; Holder may be a client name or "any".
type Condition struct {
	Holder  string
	Phase   string        // e.g. "after-read", "after-acquire"; "" = any
	Timeout time.Duration // 0 = Runner.WaitTimeout
}

// Link is one direction of a network path between two named components.
type Link struct{ From, To string }

func (l Link) String() string { return l.From + "->" + l.To }

// Validate reports whether s names a known fault and carries the fields that fault needs.
// It does not resolve roles or check names against the topology.
func (s Step) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidStep, s.Fault, fmt.Sprintf(format, args...))
	}
	if s.At < 0 || s.For < 0 || s.RestartAfter < 0 {
		return bad("negative duration")
	}
	switch s.Fault {
	case FaultCrash, FaultRestart, FaultPause, FaultResume:
		if s.Target == "" {
			return bad("target is required")
		}
	case FaultClockSkew:
		if s.Target == "" {
			return bad("target is required")
		}
		if s.Skew == 0 {
			return bad("skew is required")
		}
	case FaultPartition:
		if _, err := partitionGroups(s, nil); err != nil && !errors.Is(err, ErrUnknownMember) {
			return err
		}
	case FaultDelay:
		if _, err := delayLinks(s); err != nil {
			return err
		}
		if s.Latency < 0 || s.Jitter < 0 || s.Latency == 0 && s.Jitter == 0 {
			return bad("latency or jitter must be positive")
		}
	case FaultHeal:
	case "":
		return fmt.Errorf("%w: fault is required", ErrInvalidStep)
	default:
		return fmt.Errorf("%w: unknown fault %q", ErrInvalidStep, s.Fault)
	}
	return nil
}

// ParseLink parses "a->b" (one direction) or "a<->b" (both directions).
func ParseLink(s string) ([]Link, error) {
	if a, b, ok := strings.Cut(s, "<->"); ok {
		a, b = strings.TrimSpace(a), strings.TrimSpace(b)
		if a == "" || b == "" || a == b {
			return nil, fmt.Errorf("%w: bad link %q", ErrInvalidStep, s)
		}
		return []Link{{a, b}, {b, a}}, nil
	}
	if a, b, ok := strings.Cut(s, "->"); ok {
		a, b = strings.TrimSpace(a), strings.TrimSpace(b)
		if a == "" || b == "" || a == b {
			return nil, fmt.Errorf("%w: bad link %q", ErrInvalidStep, s)
		}
		return []Link{{a, b}}, nil
	}
	return nil, fmt.Errorf("%w: bad link %q (want \"a->b\" or \"a<->b\")", ErrInvalidStep, s)
}

// delayLinks returns the links a delay step slows: Link, or From->To.
func delayLinks(s Step) ([]Link, error) {
	switch {
	case s.Link != "" && (s.From != "" || s.To != ""):
		return nil, fmt.Errorf("%w: delay: give link or from/to, not both", ErrInvalidStep)
	case s.Link != "":
		return ParseLink(s.Link)
	case s.From != "" && s.To != "" && s.From != s.To:
		return []Link{{s.From, s.To}}, nil
	}
	return nil, fmt.Errorf("%w: delay: link (or from and to) is required", ErrInvalidStep)
}

// CutsFor translates a partition step whose names are already resolved into the one-way cuts that
// realise it, in a deterministic order. members are every partitionable component (Env.Members).
//
//   - isolate X: X is cut from every other member, both ways ([[X], rest]).
//   - groups [[A...],[B...],...]: every pair in different groups is cut both ways; members not
//     listed in any group are unaffected (they still reach everyone).
//   - bridge X: the other members are split into two halves (alternately in sorted order, or the
//     two Groups when given); the halves are cut from each other both ways, X is cut from nobody.
//   - from X to Y: only X->Y is cut (Y's traffic to X still flows).
func CutsFor(s Step, members []string) ([]Link, error) {
	if s.Fault != FaultPartition {
		return nil, fmt.Errorf("%w: CutsFor needs a partition, got %q", ErrInvalidStep, s.Fault)
	}
	if members == nil {
		members = []string{} // nil would skip the membership checks
	}
	groups, err := partitionGroups(s, members)
	if err != nil {
		return nil, err
	}
	if s.From != "" {
		return []Link{{s.From, s.To}}, nil
	}
	var cuts []Link
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					cuts = append(cuts, Link{a, b})
				}
			}
		}
	}
	slices.SortFunc(cuts, func(x, y Link) int {
		if c := strings.Compare(x.From, y.From); c != 0 {
			return c
		}
		return strings.Compare(x.To, y.To)
	})
	return cuts, nil
}

// partitionGroups returns the groups that must not see each other. With members == nil it only
// validates the shape of s.
func partitionGroups(s Step, members []string) ([][]string, error) {
	bad := func(msg string) error { return fmt.Errorf("%w: partition: %s", ErrInvalidStep, msg) }
	kinds := 0
	for _, set := range []bool{s.Isolate != "", s.Bridge != "", s.From != "" || s.To != ""} {
		if set {
			kinds++
		}
	}
	if len(s.Groups) > 0 && s.Bridge == "" {
		kinds++
	}
	if kinds != 1 {
		return nil, bad("give exactly one of isolate, groups, bridge or from/to")
	}
	check := func(names ...string) error {
		if members == nil {
			return nil
		}
		for _, n := range names {
			if !slices.Contains(members, n) {
				return fmt.Errorf("%w: %q", ErrUnknownMember, n)
			}
		}
		return nil
	}
	if s.From != "" || s.To != "" {
		if s.From == "" || s.To == "" || s.From == s.To {
			return nil, bad("from and to must name two members")
		}
		if err := check(s.From, s.To); err != nil {
			return nil, err
		}
		return [][]string{{s.From}, {s.To}}, nil
	}
	rest := func(except ...string) []string {
		var out []string
		for _, m := range members {
			if !slices.Contains(except, m) {
				out = append(out, m)
			}
		}
		slices.Sort(out)
		return out
	}
	switch {
	case s.Isolate != "":
		if err := check(s.Isolate); err != nil {
			return nil, err
		}
		return [][]string{{s.Isolate}, rest(s.Isolate)}, nil
	case s.Bridge != "":
		if len(s.Groups) != 0 && len(s.Groups) != 2 {
			return nil, bad("bridge takes two groups (the halves) or none")
		}
		if err := checkDisjoint(s.Groups, bad); err != nil {
			return nil, err
		}
		for _, g := range s.Groups {
			if slices.Contains(g, s.Bridge) {
				return nil, bad("the bridge must not be in a half")
			}
		}
		if err := check(s.Bridge); err != nil {
			return nil, err
		}
		if len(s.Groups) == 2 {
			if err := check(slices.Concat(s.Groups...)...); err != nil {
				return nil, err
			}
			return s.Groups, nil
		}
		var a, b []string
		for i, m := range rest(s.Bridge) {
			if i%2 == 0 {
				a = append(a, m)
			} else {
				b = append(b, m)
			}
		}
		return [][]string{a, b}, nil
	default:
		if len(s.Groups) < 2 {
			return nil, bad("groups needs at least two groups")
		}
		if err := checkDisjoint(s.Groups, bad); err != nil {
			return nil, err
		}
		if err := check(slices.Concat(s.Groups...)...); err != nil {
			return nil, err
		}
		return s.Groups, nil
	}
}

func checkDisjoint(groups [][]string, bad func(string) error) error {
	seen := map[string]bool{}
	for _, g := range groups {
		if len(g) == 0 {
			return bad("empty group")
		}
		for _, n := range g {
			if n == "" {
				return bad("empty name in group")
			}
			if seen[n] {
				return bad(fmt.Sprintf("%q is in two groups", n))
			}
			seen[n] = true
		}
	}
	return nil
}
