package loadbalancer

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wire is a tiny network for the adverts of a test group: a link from one
// node to another can be cut (dials fail, writes fail) and mended.
type wire struct {
	mu  sync.Mutex
	cut map[[2]string]bool
}

var errCut = errors.New("cut")

func (w *wire) set(from, to string, cut bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cut == nil {
		w.cut = map[[2]string]bool{}
	}
	w.cut[[2]string{from, to}] = cut
}

func (w *wire) isCut(from, to string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cut[[2]string{from, to}]
}

// dialer is node from's Dial; names maps advert addresses to node names.
func (w *wire) dialer(from string, names *sync.Map) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		to, _ := names.Load(addr)
		if w.isCut(from, to.(string)) {
			return nil, errCut
		}
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &wireConn{Conn: c, cut: func() bool { return w.isCut(from, to.(string)) }}, nil
	}
}

type wireConn struct {
	net.Conn
	cut func() bool
}

func (c *wireConn) Write(b []byte) (int, error) {
	if c.cut() {
		return 0, errCut
	}
	return c.Conn.Write(b)
}

// group is a test VRRP group over a wire, with a virtual address.
type group struct {
	t     *testing.T
	wire  *wire
	names sync.Map
	vip   *VirtualAddress
	nodes map[string]*Node
	cfgs  map[string]RouterConfig
	moves atomic.Int64
}

func newGroup(t *testing.T, cfgs ...RouterConfig) *group {
	g := &group{t: t, wire: &wire{}, nodes: map[string]*Node{}, cfgs: map[string]RouterConfig{}}
	g.vip = startVIP(t, VirtualConfig{OnMove: func(string, string) { g.moves.Add(1) }})
	for _, c := range cfgs {
		g.cfgs[c.Name] = c
		g.start(c.Name)
	}
	g.peer()
	return g
}

// start starts (or restarts) node name.
func (g *group) start(name string) {
	n, err := NewNode(NodeConfig{RouterConfig: g.cfgs[name], Serve: name + ":80", VIP: g.vip, Dial: g.wire.dialer(name, &g.names)})
	require.NoError(g.t, err)
	require.NoError(g.t, n.Start(g.t.Context()))
	g.t.Cleanup(func() { require.NoError(g.t, n.Close()) })
	g.names.Store(n.AdvertAddr(), name)
	g.nodes[name] = n
}

func (g *group) peer() {
	peers := map[string]string{}
	for name, n := range g.nodes {
		peers[name] = n.AdvertAddr()
	}
	for _, n := range g.nodes {
		n.SetPeers(peers)
	}
}

func (g *group) owner() string {
	name, _ := g.vip.Owner()
	return name
}

func (g *group) state(name string) State { return g.nodes[name].Status().State }

// eventually waits for the group to settle as want says: the state of
// each node named, and the owner of the virtual address.
func (g *group) eventually(owner string, want map[string]State) {
	g.t.Helper()
	require.Eventually(g.t, func() bool {
		for name, s := range want {
			if g.state(name) != s {
				return false
			}
		}
		return g.owner() == owner
	}, 20*time.Second, 5*time.Millisecond, "want owner %s and %v", owner, want)
}

var (
	b1 = RouterConfig{Name: "balancer-1", Priority: 110, Interval: 50 * ms}
	b2 = RouterConfig{Name: "balancer-2", Priority: 100, Interval: 50 * ms}
)

func TestNodesElectTheHighestPriorityAndFailOver(t *testing.T) {
	g := newGroup(t, b1, b2)
	g.eventually("balancer-1", map[string]State{"balancer-1": StateMaster, "balancer-2": StateBackup})
	assert.Equal(t, "balancer-1:80", func() string { _, a := g.vip.Owner(); return a }())
	require.Eventually(t, func() bool { return g.nodes["balancer-2"].Status().AdvertsHeard > 0 }, 10*time.Second, 5*time.Millisecond)

	// Crash the master: its claim stays until the backup's master-down
	// timer runs out.
	require.NoError(t, g.nodes["balancer-1"].Close())
	g.eventually("balancer-2", map[string]State{"balancer-2": StateMaster})
	st := g.nodes["balancer-2"].Status()
	assert.Contains(t, st.Reason, "no advert from balancer-1")
	assert.Equal(t, "balancer-2", st.Master)

	// Restarted, the higher priority preempts: it ignores balancer-2's
	// adverts, times out, takes over; balancer-2 yields on its advert.
	g.start("balancer-1")
	g.peer()
	g.eventually("balancer-1", map[string]State{"balancer-1": StateMaster, "balancer-2": StateBackup})
	assert.Contains(t, g.nodes["balancer-2"].Status().Reason, "heard balancer-1 at priority 110 > 100")
}

func TestNodeWithoutPreemptStaysBackup(t *testing.T) {
	slow1, slow2 := b1, b2
	slow1.Interval, slow2.Interval = 100*ms, 100*ms
	slow1.NoPreempt = true
	g := newGroup(t, slow1, slow2)
	g.eventually("balancer-1", map[string]State{"balancer-1": StateMaster, "balancer-2": StateBackup})
	require.NoError(t, g.nodes["balancer-1"].Close())
	g.eventually("balancer-2", map[string]State{"balancer-2": StateMaster})

	g.start("balancer-1")
	g.peer()
	n1 := g.nodes["balancer-1"]
	// It hears balancer-2 and accepts it as master; ten of its master-down
	// intervals later it has still never advertised.
	require.Eventually(t, func() bool { return n1.Status().Master == "balancer-2" }, 10*time.Second, 5*time.Millisecond)
	// (A window of time, not a condition: the count is cumulative.)
	time.Sleep(10 * n1.Status().MasterDown)
	require.Zero(t, n1.Status().AdvertsSent, "nopreempt: balancer-1 took over from balancer-2")
	assert.Equal(t, "balancer-2", g.owner())
}

func TestPausedMasterComesBackAsMaster(t *testing.T) {
	g := newGroup(t, b1, b2)
	g.eventually("balancer-1", map[string]State{"balancer-1": StateMaster, "balancer-2": StateBackup})
	n1 := g.nodes["balancer-1"]
	n1.Pause()
	assert.True(t, n1.Status().Paused)
	g.eventually("balancer-2", map[string]State{"balancer-2": StateMaster})
	assert.Equal(t, StateMaster, n1.Status().State, "frozen, it still believes it is master")
	sent := n1.Status().AdvertsSent
	time.Sleep(5 * b1.Interval) // a window: a frozen node sends nothing
	require.Equal(t, sent, n1.Status().AdvertsSent, "a paused node advertised")

	n1.Resume()
	// Never having left the master state, it advertises at once, takes the
	// address back, and balancer-2 yields: preemption plays no part.
	g.eventually("balancer-1", map[string]State{"balancer-1": StateMaster, "balancer-2": StateBackup})
	assert.Greater(t, n1.Status().AdvertsSent, sent)
}

func TestCutAdvertsMakeTwoMasters(t *testing.T) {
	g := newGroup(t, b1, b2)
	g.eventually("balancer-1", map[string]State{"balancer-1": StateMaster, "balancer-2": StateBackup})
	g.wire.set("balancer-1", "balancer-2", true)
	g.wire.set("balancer-2", "balancer-1", true)
	g.eventually(g.owner(), map[string]State{"balancer-1": StateMaster, "balancer-2": StateMaster})
	// Both advertise, so the address goes back and forth (the switch
	// learns the virtual MAC from every advert).
	before := g.moves.Load()
	require.Eventually(t, func() bool { return g.moves.Load() >= before+4 }, 10*time.Second, 5*time.Millisecond)

	g.wire.set("balancer-1", "balancer-2", false)
	g.wire.set("balancer-2", "balancer-1", false)
	g.eventually("balancer-1", map[string]State{"balancer-1": StateMaster, "balancer-2": StateBackup})
}

func TestNodeConfigAndLifecycle(t *testing.T) {
	_, err := NewNode(NodeConfig{RouterConfig: RouterConfig{Name: "x"}, VIP: NewVirtualAddress(VirtualConfig{})})
	assert.ErrorIs(t, err, ErrInvalidVRRP, "a virtual address needs Serve")
	_, err = NewNode(NodeConfig{RouterConfig: RouterConfig{Name: "x", Priority: 300}})
	assert.ErrorIs(t, err, ErrInvalidVRRP)

	n, err := NewNode(NodeConfig{RouterConfig: RouterConfig{Name: "x", Interval: 20 * ms}})
	require.NoError(t, err)
	assert.Empty(t, n.AdvertAddr())
	require.NoError(t, n.Start(t.Context()))
	assert.ErrorIs(t, n.Start(t.Context()), ErrStarted)
	n.SetPeers(map[string]string{"x": n.AdvertAddr(), "gone": deadURL(t)[len("http://"):]})
	require.Eventually(t, func() bool { return n.Status().State == StateMaster }, 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return n.Status().AdvertsSent > 3 }, 10*time.Second, 5*time.Millisecond,
		"a peer that refuses connections loses adverts; the master goes on")
	require.NoError(t, n.Close())
	require.NoError(t, n.Close())
	assert.ErrorIs(t, n.Start(t.Context()), ErrClosed)
}

// A master that hears a better master yields and releases the virtual
// address at once; it never claims it as a backup.
func TestYieldingMasterReleasesTheAddress(t *testing.T) {
	g := newGroup(t, RouterConfig{Name: "balancer-1", Priority: 100, Interval: 50 * ms})
	n := g.nodes["balancer-1"]
	g.eventually("balancer-1", map[string]State{"balancer-1": StateMaster})

	// A better master (one that exists only as this advert) speaks once.
	c, err := net.Dial("tcp", n.AdvertAddr())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte(`{"from":"balancer-9","priority":200,"interval":1000000000}` + "\n"))
	require.NoError(t, err)
	g.eventually("", map[string]State{"balancer-1": StateBackup})
	st := n.Status()
	assert.Equal(t, "balancer-9", st.Master)
	assert.Equal(t, 3*time.Second+609375*time.Microsecond, st.MasterDown, "learned from the advert: 3 x 1s + 156/256 s")

	// Silence from it: balancer-1 takes over again and claims the address.
	g.eventually("balancer-1", map[string]State{"balancer-1": StateMaster})
}
