package cluster

import "fmt"

// Link is one ordered pair of members. Cut means Cut(From, To) is in force
// (see the package doc for what a cut drops).
type Link struct {
	From, To string
	Cut      bool
}

// linkMatrix[i][j] is true when member i drops Raft traffic on its link to j.
type linkMatrix [][]bool

func newLinkMatrix(n int) linkMatrix {
	m := make(linkMatrix, n)
	for i := range m {
		m[i] = make([]bool, n)
	}
	return m
}

// partitionMatrix returns the links of a partition of n members into groups:
// every ordered pair of members in different groups is cut. A member listed in
// no group is isolated (a group of its own). A member in two groups, or an
// index out of range, is an error.
func partitionMatrix(n int, groups [][]int) (linkMatrix, error) {
	group := make([]int, n)
	for i := range group {
		group[i] = -1
	}
	for g, members := range groups {
		for _, i := range members {
			if i < 0 || i >= n {
				return nil, fmt.Errorf("%w: member index %d out of range", ErrUnknownMember, i)
			}
			if group[i] != -1 && group[i] != g {
				return nil, fmt.Errorf("%w: %s is in groups %d and %d", ErrInvalidLink, memberName(i), group[i]+1, g+1)
			}
			group[i] = g
		}
	}
	next := len(groups)
	for i := range group {
		if group[i] == -1 {
			group[i] = next
			next++
		}
	}
	m := newLinkMatrix(n)
	for i := range n {
		for j := range n {
			m[i][j] = i != j && group[i] != group[j]
		}
	}
	return m, nil
}

// isolateMatrix adds to m the cuts that isolate member i in both directions.
func (m linkMatrix) isolate(i int) {
	for j := range m {
		if j != i {
			m[i][j] = true
			m[j][i] = true
		}
	}
}

// links lists every ordered pair (i != j) in index order.
func (m linkMatrix) links(names []string) []Link {
	out := make([]Link, 0, len(m)*(len(m)-1))
	for i := range m {
		for j := range m {
			if i != j {
				out = append(out, Link{From: names[i], To: names[j], Cut: m[i][j]})
			}
		}
	}
	return out
}

// Cut drops the link from -> to; see the package doc for exactly what that
// drops. Cuts are remembered: one involving a crashed member is applied when it
// restarts, and they last until Heal or Partition.
func (c *Cluster) Cut(from, to string) error {
	return c.updateLinks(func(m linkMatrix) error {
		i, j, err := c.pair(from, to)
		if err != nil {
			return err
		}
		m[i][j] = true
		return nil
	})
}

// Mend undoes Cut(from, to); the reverse direction keeps its state.
func (c *Cluster) Mend(from, to string) error {
	return c.updateLinks(func(m linkMatrix) error {
		i, j, err := c.pair(from, to)
		if err != nil {
			return err
		}
		m[i][j] = false
		return nil
	})
}

// CutBoth cuts a -> b and b -> a.
func (c *Cluster) CutBoth(a, b string) error {
	return c.updateLinks(func(m linkMatrix) error {
		i, j, err := c.pair(a, b)
		if err != nil {
			return err
		}
		m[i][j], m[j][i] = true, true
		return nil
	})
}

// Partition REPLACES the current links with a symmetric partition: every pair
// of members in different groups is cut both ways, every pair inside a group is
// mended. A member named in no group is isolated from everyone (a group of
// its own). A member named in two groups is ErrInvalidLink.
func (c *Cluster) Partition(groups ...[]string) error {
	idx := make([][]int, len(groups))
	for g, names := range groups {
		for _, name := range names {
			i, err := c.index(name)
			if err != nil {
				return err
			}
			idx[g] = append(idx[g], i)
		}
	}
	return c.updateLinks(func(m linkMatrix) error {
		p, err := partitionMatrix(len(m), idx)
		if err != nil {
			return err
		}
		for i := range m {
			copy(m[i], p[i])
		}
		return nil
	})
}

// Isolate cuts every link to and from name (adding to existing cuts).
func (c *Cluster) Isolate(name string) error {
	return c.updateLinks(func(m linkMatrix) error {
		i, err := c.index(name)
		if err != nil {
			return err
		}
		m.isolate(i)
		return nil
	})
}

// Heal mends every cut.
func (c *Cluster) Heal() error {
	return c.updateLinks(func(m linkMatrix) error {
		for i := range m {
			clear(m[i])
		}
		return nil
	})
}

// Links lists every ordered pair of members ("etcd-1"->"etcd-2", ...) with its
// cut state, in name order.
func (c *Cluster) Links() []Link {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cuts.links(c.names)
}

func (c *Cluster) pair(a, b string) (int, int, error) {
	i, err := c.index(a)
	if err != nil {
		return 0, 0, err
	}
	j, err := c.index(b)
	if err != nil {
		return 0, 0, err
	}
	if i == j {
		return 0, 0, fmt.Errorf("%w: %s to itself", ErrInvalidLink, a)
	}
	return i, j, nil
}

// updateLinks edits a copy of the link matrix with edit and, when edit
// succeeds, installs it and applies it to every running member.
func (c *Cluster) updateLinks(edit func(linkMatrix) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case stateNew:
		return ErrNotStarted
	case stateClosed:
		return ErrClosed
	}
	m := newLinkMatrix(len(c.members))
	for i := range m {
		copy(m[i], c.cuts[i])
	}
	if err := edit(m); err != nil {
		return err
	}
	c.cuts = m
	for i := range c.members {
		c.applyLinksLocked(i)
	}
	return nil
}

// applyLinksLocked makes running member i's transport match row i of the
// link matrix. CutPeer/MendPeer are idempotent and cheap (a flag per peer).
func (c *Cluster) applyLinksLocked(i int) {
	e := c.members[i].etcd
	if e == nil {
		return
	}
	for j, to := range c.members {
		if j == i || to.id == 0 {
			continue
		}
		if c.cuts[i][j] {
			e.Server.CutPeer(to.typesID())
		} else {
			e.Server.MendPeer(to.typesID())
		}
	}
}
