package component

import (
	"fmt"
	"strings"
)

// Link is one direction of the path between two named components: traffic
// from From to To.
type Link struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// String writes the link as "from->to".
func (l Link) String() string { return l.From + "->" + l.To }

// Reverse is the other direction.
func (l Link) Reverse() Link { return Link{From: l.To, To: l.From} }

// Compare orders links by From, then To.
func (l Link) Compare(o Link) int {
	if c := strings.Compare(l.From, o.From); c != 0 {
		return c
	}
	return strings.Compare(l.To, o.To)
}

// ParseLink parses "a->b" (one direction: one link) or "a<->b" (both
// directions: the links a->b and b->a). It checks the syntax only: two
// different, non-empty names.
func ParseLink(s string) ([]Link, error) {
	a, b, both, ok := SplitLink(s)
	if !ok {
		return nil, fmt.Errorf("%w: link %q (want \"a->b\" or \"a<->b\" between two components, e.g. \"etcd-1<->etcd-2\")", ErrBadName, s)
	}
	if a == b {
		return nil, fmt.Errorf("%w: link %q joins %s to itself", ErrSelfLink, s, a)
	}
	if both {
		return []Link{{a, b}, {b, a}}, nil
	}
	return []Link{{a, b}}, nil
}

// SplitLink splits "a->b" or "a<->b" into its two trimmed, non-empty ends;
// both is true for "<->".
func SplitLink(s string) (a, b string, both, ok bool) {
	sep := "->"
	if strings.Contains(s, "<->") {
		sep, both = "<->", true
	}
	a, b, ok = strings.Cut(s, sep)
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	return a, b, both, ok && a != "" && b != ""
}

// FormatLink writes links as ParseLink reads them: "a->b" for one link,
// "a<->b" for a link and its reverse.
func FormatLink(links []Link) string {
	if len(links) == 2 && links[1] == links[0].Reverse() {
		return links[0].From + "<->" + links[0].To
	}
	parts := make([]string, len(links))
	for i, l := range links {
		parts[i] = l.String()
	}
	return strings.Join(parts, ", ")
}

// linked are the pairs of kinds that talk to each other directly.
var linked = map[[2]string]bool{
	{Etcd, Etcd}:           true,
	{LockServer, Etcd}:     true,
	{Balancer, LockServer}: true,
	{Client, Balancer}:     true,
	{Balancer, Balancer}:   true, // VRRP adverts
}

// Connected reports whether components of two kinds talk to each other
// directly (in either direction): etcd<->etcd, lockserver<->etcd,
// balancer<->lockserver, client<->balancer, balancer<->balancer (the VRRP
// adverts of a redundant pair).
func Connected(a, b string) bool { return linked[[2]string{a, b}] || linked[[2]string{b, a}] }

// Phases of a simulated client's lock cycle, in the order a cycle passes
// them. A fault can wait for a client to reach one ("when: {phase: ...}").
const (
	PhaseIdle        = "idle"
	PhaseAcquiring   = "acquiring"
	PhaseAcquired    = "acquired"     // the client has just been granted the lock
	PhaseAfterRead   = "after-read"   // it has read the protected resource
	PhaseBeforeWrite = "before-write" // it is about to write the protected resource
	PhaseReleasing   = "releasing"
	PhaseReleased    = "released" // it has just released the lock
)

// TriggerPhases are the phases a fault can wait for.
var TriggerPhases = []string{PhaseAcquired, PhaseAfterRead, PhaseBeforeWrite, PhaseReleased}
