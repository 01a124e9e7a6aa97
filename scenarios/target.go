package scenarios

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Component kinds a target can name.
const (
	KindEtcd       = "etcd"
	KindLockServer = "lockserver"
	KindClient     = "client"
	KindBalancer   = "balancer"
)

// Roles a target can name instead of one component. They are resolved when
// the step fires.
const (
	RoleLeader   = "leader"   // etcd:leader
	RoleFollower = "follower" // etcd:follower (one of them)
	RoleAny      = "any"      // lockserver:any (one of them)
	RoleHolder   = "holder"   // client:holder (the client holding the lock)
)

// ErrBadTarget is wrapped by ParseTarget and ParseLink errors.
var ErrBadTarget = errors.New("scenarios: bad target")

// Target is a parsed target: one named component ("etcd-2") or a role
// ("etcd:leader").
type Target struct {
	Kind  string // etcd, lockserver, client or balancer
	Name  string // "etcd-2", "balancer"; "" for roles
	Index int    // 1-based number of a named etcd/lockserver/client; 0 otherwise
	Role  string // leader, follower, any, holder; "" for named components
}

// String returns the target as written in a scenario file.
func (t Target) String() string {
	if t.Role != "" {
		return t.Kind + ":" + t.Role
	}
	return t.Name
}

// IsRole reports whether the target is resolved when the step fires.
func (t Target) IsRole() bool { return t.Role != "" }

var kindRoles = map[string]string{
	KindEtcd:       RoleLeader + "|" + RoleFollower,
	KindLockServer: RoleAny,
	KindClient:     RoleHolder,
}

// targetSyntax is the list of forms shown in error messages.
const targetSyntax = "etcd-N, etcd:leader, etcd:follower, lockserver-N, lockserver:any, client-N, client:holder or balancer"

// ParseTarget parses one target. It checks syntax only; whether the
// component exists is a question of the topology (see Validate).
func ParseTarget(s string) (Target, error) {
	if s == KindBalancer {
		return Target{Kind: KindBalancer, Name: KindBalancer}, nil
	}
	if kind, role, ok := strings.Cut(s, ":"); ok {
		roles, known := kindRoles[kind]
		if !known {
			return Target{}, fmt.Errorf("%w %q (want %s)", ErrBadTarget, s, targetSyntax)
		}
		for _, r := range strings.Split(roles, "|") {
			if r == role {
				return Target{Kind: kind, Role: role}, nil
			}
		}
		return Target{}, fmt.Errorf("%w %q (%s has the role%s %s)", ErrBadTarget, s, kind,
			plural(strings.Count(roles, "|")+1), quoteList(strings.Split(roles, "|")))
	}
	kind, num, ok := strings.Cut(s, "-")
	if _, known := kindRoles[kind]; !ok || !known {
		return Target{}, fmt.Errorf("%w %q (want %s)", ErrBadTarget, s, targetSyntax)
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || strconv.Itoa(n) != num {
		return Target{}, fmt.Errorf("%w %q (%s numbers start at 1, as in %s-1)", ErrBadTarget, s, kind, kind)
	}
	return Target{Kind: kind, Name: s, Index: n}, nil
}

// Link is a parsed `delay.link`.
type Link struct {
	From, To Target
	Both     bool // "a<->b": delay both directions
}

// ParseLink parses "a->b" or "a<->b" between two named components.
func ParseLink(s string) (Link, error) {
	sep, both := "->", false
	if strings.Contains(s, "<->") {
		sep, both = "<->", true
	}
	a, b, ok := strings.Cut(s, sep)
	if !ok {
		return Link{}, fmt.Errorf("%w: link %q (want \"a->b\" or \"a<->b\", e.g. \"etcd-1<->etcd-2\")", ErrBadTarget, s)
	}
	from, err := ParseTarget(strings.TrimSpace(a))
	if err != nil {
		return Link{}, err
	}
	to, err := ParseTarget(strings.TrimSpace(b))
	if err != nil {
		return Link{}, err
	}
	if from.IsRole() || to.IsRole() {
		return Link{}, fmt.Errorf("%w: link %q joins named components, not roles", ErrBadTarget, s)
	}
	return Link{From: from, To: to, Both: both}, nil
}

// linkedKinds are the pairs of kinds that talk to each other directly.
var linkedKinds = map[[2]string]bool{
	{KindEtcd, KindEtcd}:           true,
	{KindLockServer, KindEtcd}:     true,
	{KindBalancer, KindLockServer}: true,
	{KindClient, KindBalancer}:     true,
}

// connected reports whether two kinds talk to each other directly.
func connected(a, b string) bool { return linkedKinds[[2]string{a, b}] || linkedKinds[[2]string{b, a}] }

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
