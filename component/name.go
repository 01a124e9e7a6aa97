package component

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kinds of component.
const (
	Etcd       = "etcd"       // an etcd member: etcd-1..etcd-3
	LockServer = "lockserver" // a lock server: lockserver-1..lockserver-N
	Client     = "client"     // a simulated client: client-1..client-N
	Balancer   = "balancer"   // a load balancer: "balancer" when it is the only one, else balancer-1..balancer-N
)

// Kinds lists every kind, in the order of the design's picture, from the
// bottom (etcd) up.
var Kinds = []string{Etcd, LockServer, Client, Balancer}

var (
	// ErrBadName is wrapped by the errors of ParseTarget and ParseLink.
	ErrBadName = errors.New("component: bad name")
	// ErrSelfLink is wrapped by ParseLink's error for a link from a
	// component to itself.
	ErrSelfLink = fmt.Errorf("%w: a link joins two different components", ErrBadName)
)

// Name returns the name of the i-th (1-based) component of a kind:
// Name(Etcd, 2) is "etcd-2", Name(Balancer, 1) is "balancer-1". The only
// balancer of a sandbox that has one is named by its kind, "balancer" (see
// Names).
func Name(kind string, i int) string {
	return kind + "-" + strconv.Itoa(i)
}

// Names returns the names of components 1..n of a kind. One balancer is
// "balancer"; two or more are balancer-1..balancer-n.
func Names(kind string, n int) []string {
	if kind == Balancer && n == 1 {
		return []string{Balancer}
	}
	out := make([]string, n)
	for i := range n {
		out[i] = Name(kind, i+1)
	}
	return out
}

// Parse splits a component name into its kind and 1-based index ("etcd-2"
// is Etcd, 2; "balancer-1" is Balancer, 1; the only balancer "balancer" is
// Balancer, 0). ok is false for anything else, roles included.
func Parse(name string) (kind string, index int, ok bool) {
	if name == Balancer {
		return Balancer, 0, true
	}
	kind, num, found := strings.Cut(name, "-")
	if !found || (kind != Etcd && kind != LockServer && kind != Client && kind != Balancer) {
		return "", 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || strconv.Itoa(n) != num {
		return "", 0, false
	}
	return kind, n, true
}

// KindOf returns the kind of a component name, or "" when name is not one.
func KindOf(name string) string {
	kind, _, _ := Parse(name)
	return kind
}

// Roles a target can name instead of one component. They are resolved when
// the fault fires.
const (
	RoleLeader   = "leader"   // etcd:leader
	RoleFollower = "follower" // etcd:follower (one of them)
	RoleAny      = "any"      // lockserver:any (one of the running ones)
	RoleHolder   = "holder"   // client:holder (a client that holds a lock)
	RoleMaster   = "master"   // balancer:master (a balancer that is VRRP master now)
)

// The roles as written in a target.
const (
	EtcdLeader     = Etcd + ":" + RoleLeader
	EtcdFollower   = Etcd + ":" + RoleFollower
	AnyLockServer  = LockServer + ":" + RoleAny
	HolderClient   = Client + ":" + RoleHolder
	MasterBalancer = Balancer + ":" + RoleMaster
	targetSyntax   = "etcd-N, etcd:leader, etcd:follower, lockserver-N, lockserver:any, client-N, client:holder, balancer, balancer-N or balancer:master"
	numberingHint  = "%s numbers start at 1, as in %s-1"
)

// kindRoles lists the roles of each kind that has any.
var kindRoles = map[string][]string{
	Etcd:       {RoleLeader, RoleFollower},
	LockServer: {RoleAny},
	Client:     {RoleHolder},
	Balancer:   {RoleMaster},
}

// Target is a parsed target: one named component ("etcd-2") or a role
// ("etcd:leader").
type Target struct {
	Kind  string // Etcd, LockServer, Client or Balancer
	Name  string // "etcd-2", "balancer", "balancer-1"; "" for roles
	Index int    // 1-based number of a numbered component; 0 for "balancer" and roles
	Role  string // RoleLeader, ...; "" for named components
}

// String returns the target as written.
func (t Target) String() string {
	if t.Role != "" {
		return t.Kind + ":" + t.Role
	}
	return t.Name
}

// IsRole reports whether the target is resolved when the fault fires.
func (t Target) IsRole() bool { return t.Role != "" }

// IsRole reports whether a target string names a role ("etcd:leader")
// rather than a component.
func IsRole(target string) bool { return strings.Contains(target, ":") }

// ParseTarget parses one target. It checks the syntax only; whether the
// component exists is a question of the topology.
func ParseTarget(s string) (Target, error) {
	if kind, role, ok := strings.Cut(s, ":"); ok {
		roles, known := kindRoles[kind]
		if !known {
			return Target{}, fmt.Errorf("%w %q (want %s)", ErrBadName, s, targetSyntax)
		}
		for _, r := range roles {
			if r == role {
				return Target{Kind: kind, Role: role}, nil
			}
		}
		return Target{}, fmt.Errorf("%w %q (%s has the role%s %s)", ErrBadName, s, kind, plural(len(roles)), quoteList(roles))
	}
	if kind, n, ok := Parse(s); ok {
		return Target{Kind: kind, Name: s, Index: n}, nil
	}
	if kind, _, ok := strings.Cut(s, "-"); ok {
		if _, known := kindRoles[kind]; known {
			return Target{}, fmt.Errorf("%w %q ("+numberingHint+")", ErrBadName, s, kind, kind)
		}
	}
	return Target{}, fmt.Errorf("%w %q (want %s)", ErrBadName, s, targetSyntax)
}

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
