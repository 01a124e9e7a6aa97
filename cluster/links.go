package cluster

import (
	"fmt"
	"time"
)

// Link is one directed link between two members: From's messages to To.
// Cut: they are dropped. Latency and Jitter: the delay set with SetDelay
// (0: none). See the package doc for exactly what travels on a link.
type Link struct {
	From, To        string
	Cut             bool
	Latency, Jitter time.Duration
}

// linkMatrix[i][j] is true when member i's messages to member j are dropped.
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

// Cut drops from's messages to to from now on; to's messages to from still
// arrive (see the package doc for exactly what that drops). A cut belongs to
// the cluster, not to a member: it holds while either member is down and
// after it restarts, until Mend, Heal or Partition.
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

// Heal mends every cut and removes every delay.
func (c *Cluster) Heal() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usableLocked(); err != nil {
		return err
	}
	n := len(c.members)
	c.nw.setCuts(newLinkMatrix(n))
	for i := range n {
		for j := range n {
			c.nw.setDelay(i, j, linkDelay{})
		}
	}
	return nil
}

// SetDelay delays from's messages to to by latency, plus a jitter drawn
// uniformly from [-jitter, +jitter] for every chunk of bytes (capped at
// latency; a stream keeps its order, so a chunk never overtakes an earlier
// one). to's messages to from are not delayed. latency 0 removes the delay.
// Like a cut, a delay belongs to the cluster and lasts across Crash and
// Restart of either member. Negative values and a link from a member to
// itself are ErrInvalidLink.
func (c *Cluster) SetDelay(from, to string, latency, jitter time.Duration) error {
	i, j, err := c.pair(from, to)
	if err != nil {
		return err
	}
	if latency < 0 || jitter < 0 {
		return fmt.Errorf("%w: negative delay %v±%v on %s->%s", ErrInvalidLink, latency, jitter, from, to)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usableLocked(); err != nil {
		return err
	}
	c.nw.setDelay(i, j, linkDelay{Latency: latency, Jitter: jitter})
	return nil
}

// Links lists every directed link between members ("etcd-1"->"etcd-2", ...)
// with its cut and delay, in name order.
func (c *Cluster) Links() []Link {
	return c.nw.links(c.names)
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

// updateLinks edits a copy of the cut matrix with edit and, when edit
// succeeds, installs it in the network the peer proxies consult. It takes
// effect at once for every member, running or not.
func (c *Cluster) updateLinks(edit func(linkMatrix) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usableLocked(); err != nil {
		return err
	}
	m := c.nw.cuts()
	if err := edit(m); err != nil {
		return err
	}
	c.nw.setCuts(m)
	return nil
}
