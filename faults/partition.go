package faults

import (
	"fmt"
	"slices"
	"strings"

	"github.com/locksim/locksim/component"
)

// CutsFor translates a partition step whose names are already resolved into
// the one-way cuts that realise it, in a deterministic order. members are
// every partitionable component (Env.Members).
//
// Balancers take part only in partitions that name them: "isolate X" and
// "bridge X" leave them out of the rest unless X is a balancer, so that
// isolating an etcd member or a lock server means what it always meant.
//
//   - isolate X: X is cut from every other member, both ways ([[X], rest]).
//   - groups [[A...],[B...],...]: every pair in different groups is cut both
//     ways; members not listed in any group are unaffected (they still reach
//     everyone).
//   - bridge X: the other members are split into two halves (alternately in
//     sorted order, or the two Groups when given); the halves are cut from
//     each other both ways, X is cut from nobody.
//   - from X to Y: only X->Y is cut (Y's traffic to X still flows).
func CutsFor(s Step, members []string) ([]component.Link, error) {
	if s.Fault != FaultPartition {
		return nil, fmt.Errorf("%w: CutsFor needs a partition, got %q", ErrInvalidStep, s.Fault)
	}
	groups, err := partitionGroups(s, members)
	if err != nil {
		return nil, err
	}
	if s.From != "" {
		return []component.Link{{From: s.From, To: s.To}}, nil
	}
	var cuts []component.Link
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					cuts = append(cuts, component.Link{From: a, To: b})
				}
			}
		}
	}
	slices.SortFunc(cuts, component.Link.Compare)
	return cuts, nil
}

// partitionGroups returns the groups of a valid partition step that must not
// see each other, every name checked against members.
func partitionGroups(s Step, members []string) ([][]string, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	check := func(names ...string) error {
		for _, n := range names {
			if !slices.Contains(members, n) {
				return fmt.Errorf("%w: %q", ErrUnknownMember, n)
			}
		}
		return nil
	}
	rest := func(except string) []string {
		withBalancers := component.KindOf(except) == component.Balancer
		var out []string
		for _, m := range members {
			if m != except && (withBalancers || component.KindOf(m) != component.Balancer) {
				out = append(out, m)
			}
		}
		slices.Sort(out)
		return out
	}
	var groups [][]string
	switch {
	case s.From != "":
		groups = [][]string{{s.From}, {s.To}}
	case s.Isolate != "":
		groups = [][]string{{s.Isolate}, rest(s.Isolate)}
	case s.Bridge != "" && len(s.Groups) == 2:
		groups = s.Groups
	case s.Bridge != "":
		var a, b []string
		for i, m := range rest(s.Bridge) {
			if i%2 == 0 {
				a = append(a, m)
			} else {
				b = append(b, m)
			}
		}
		groups = [][]string{a, b}
	default:
		groups = s.Groups
	}
	names := slices.Concat(groups...)
	if s.Bridge != "" {
		names = append(names, s.Bridge) // it must exist, but it is cut from nobody
	}
	if err := check(names...); err != nil {
		return nil, err
	}
	return groups, nil
}

// describe renders a step's target as written.
func describe(s Step) string {
	switch s.Fault {
	case FaultPartition:
		switch {
		case s.Isolate != "":
			return "isolate " + s.Isolate
		case s.Bridge != "":
			return "bridge " + s.Bridge
		case s.From != "" || s.To != "":
			return s.From + "->" + s.To
		default:
			return fmt.Sprint(s.Groups)
		}
	case FaultDelay:
		return s.Link
	}
	return s.Target
}

// describePartition renders the resolved groups of a partition.
func describePartition(s Step, members []string) string {
	if s.From != "" {
		return s.From + "->" + s.To
	}
	groups, err := partitionGroups(s, members)
	if err != nil {
		return ""
	}
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = fmt.Sprint(g)
	}
	if s.Bridge != "" {
		return parts[0] + " | " + parts[1] + " via " + s.Bridge
	}
	return strings.Join(parts, " | ")
}
