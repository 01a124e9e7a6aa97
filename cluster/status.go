package cluster

import (
	"context"
	"fmt"
	"time"
)

// Roles reported in MemberStatus.Role.
const (
	RoleLeader   = "leader"
	RoleFollower = "follower"
	// RoleCandidate: running but knows no leader (Raft pre-candidate or
	// candidate; etcd does not export which).
	RoleCandidate = "candidate"
	RoleDown      = "down"
)

// MemberStatus is one member's own view, read from its running EtcdServer.
// A down member has Up=false, Role "down" and zero Raft fields.
type MemberStatus struct {
	Name string
	ID   uint64 // Raft member ID (0 before the first Start)
	Up   bool
	Role string // RoleLeader, RoleFollower, RoleCandidate or RoleDown
	// Leader: this member believes it leads (its Lead() is its own ID).
	Leader       bool
	LeaderID     uint64 // the leader this member knows, 0 if none
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	ClientURL    string
	PeerURL      string
}

// role maps a member's own view to a Role.
func role(up bool, id, lead uint64) string {
	switch {
	case !up:
		return RoleDown
	case lead == 0:
		return RoleCandidate
	case lead == id:
		return RoleLeader
	default:
		return RoleFollower
	}
}

// agreedLeader returns the index of the member that a quorum of all n
// configured members (counting itself) names as leader at its term, among
// running members that claim leadership themselves; the highest term wins. A deposed leader that has not yet
// noticed, or a minority that still names an old leader, does not count.
func agreedLeader(st []MemberStatus) (int, bool) {
	quorum := len(st)/2 + 1
	best, found := 0, false
	for i, s := range st {
		if !s.Up || !s.Leader {
			continue
		}
		votes := 0
		for _, o := range st {
			if o.Up && o.LeaderID == s.ID && o.Term == s.Term {
				votes++
			}
		}
		if votes >= quorum && (!found || s.Term > st[best].Term) {
			best, found = i, true
		}
	}
	return best, found
}

// Status returns every member's status in name order, crashed ones included.
// It reads atomics of each running server and takes no Raft round trip, so it
// is cheap enough to call every few milliseconds.
func (c *Cluster) Status() []MemberStatus {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]MemberStatus, len(c.members))
	for i, m := range c.members {
		s := MemberStatus{Name: m.name, ID: m.id, ClientURL: m.clientURL(c.cfg.Host), PeerURL: m.peerURL(c.cfg.Host)}
		if m.etcd != nil {
			srv := m.etcd.Server
			s.Up = true
			s.ID = uint64(srv.MemberID())
			s.LeaderID = srv.Lead()
			s.Leader = s.LeaderID == s.ID
			s.Term = srv.Term()
			s.CommitIndex = srv.CommittedIndex()
			s.AppliedIndex = srv.AppliedIndex()
		}
		s.Role = role(s.Up, s.ID, s.LeaderID)
		out[i] = s
	}
	return out
}

// Leader returns the member that leads according to the running members'
// own views: it claims leadership and a quorum of the configured members
// (itself included) name it at the same term. ok is false when there is no
// such member (no leader, an election in progress, or no quorum up).
func (c *Cluster) Leader() (name string, ok bool) {
	st := c.Status()
	i, ok := agreedLeader(st)
	if !ok {
		return "", false
	}
	return st[i].Name, true
}

// WaitLeader polls Leader every tick until there is one or ctx is done.
func (c *Cluster) WaitLeader(ctx context.Context) (string, error) {
	t := time.NewTicker(time.Duration(c.cfg.TickMs) * time.Millisecond)
	defer t.Stop()
	for {
		if name, ok := c.Leader(); ok {
			return name, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("cluster: wait for leader: %w", context.Cause(ctx))
		case <-c.closeCtx.Done():
			return "", ErrClosed
		case <-t.C:
		}
	}
}
