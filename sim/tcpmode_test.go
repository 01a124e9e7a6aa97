package sim

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/loadbalancer"
	"github.com/locksim/locksim/lockserver"
)

// TestTCPBalancerWorkloadIsLinearizable runs the workload through a
// balancer in tcp mode, with a lock server crashed and restarted midway:
// the history checks out, and the crash costs only outcomes the checker
// can settle.
func TestTCPBalancerWorkloadIsLinearizable(t *testing.T) {
	sb := start(t, Config{BalancerMode: loadbalancer.ModeTCP, Clients: 6, Workload: Workload{
		Resources: []string{"a", "b"}, Hold: 2 * time.Millisecond, Think: 2 * time.Millisecond,
	}})
	require.Equal(t, loadbalancer.ModeTCP, sb.Balancer(component.Balancer).Mode())
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	sb.StartWorkload(ctx)
	waitCycles(t, sb, 30)
	require.NoError(t, sb.Crash("lockserver-2"))
	before := sb.Status().Cycles
	require.Eventually(t, func() bool { return sb.Status().Cycles >= before+30 }, 30*time.Second, 10*time.Millisecond,
		"the clients keep cycling with a lock server down")
	require.NoError(t, sb.Restart(ctx, "lockserver-2"))
	waitCycles(t, sb, sb.Status().Cycles+20)
	sb.DrainWorkload(ctx)

	require.NoError(t, sb.Observer().Sync(ctx))
	ops := sb.Recorder().Ops()
	rec, err := sb.EtcdRecord(ops)
	require.NoError(t, err)
	ops, _ = history.Resolve(ops, rec)
	res := history.Check(ops, history.Options{Timeout: time.Minute})
	t.Logf("tcp mode: acquires ok/fail/unknown %d/%d/%d", res.Counts.Acquire.OK, res.Counts.Acquire.Fail, res.Counts.Acquire.Unknown)
	assert.Positive(t, res.Counts.Acquire.OK)
	assert.Equal(t, history.Linearizable, res.Lock, "lock")
	assert.Equal(t, history.Linearizable, res.Resource, "resource")
}

// TestTCPBalancerCrashedLockServerResetsItsConnections: in tcp mode a
// client's connection stays on its lock server; when that server crashes,
// a request in flight on it ends ErrOutcomeUnknown (never resent), and the
// client's next connection goes to a server that is up. With no lock
// server left, a new connection is reset: the client cannot tell whether
// its request left (ErrOutcomeUnknown), unless the reset came before it
// was written (ErrUnavailable).
func TestTCPBalancerCrashedLockServerResetsItsConnections(t *testing.T) {
	sb := start(t, Config{BalancerMode: loadbalancer.ModeTCP, LockServers: 2, Workload: Workload{Disabled: true}})
	ctx := t.Context()
	holder, waiter := pairClient(t, sb, "client-A"), pairClient(t, sb, "client-B")
	g, err := holder.Acquire(ctx, "tcp", 30*time.Second, 0)
	require.NoError(t, err)

	lb := sb.Balancer(component.Balancer)
	open := func() map[string]int64 {
		out := map[string]int64{}
		for _, st := range lb.Stats() {
			out[st.URL] = st.InFlight
		}
		return out
	}
	base := open()
	blocked := make(chan error, 1)
	go func() {
		_, err := waiter.Acquire(ctx, "tcp", 30*time.Second, 20*time.Second)
		blocked <- err
	}()
	require.Eventually(t, func() bool {
		info, err := holder.Get(ctx, "tcp")
		return err == nil && info.Waiters == 1
	}, 10*time.Second, 5*time.Millisecond, "B waits for the lock")
	var waiterServer string
	for name, u := range sb.Addresses().LockServers {
		if open()[u] > base[u] {
			waiterServer = name
		}
	}
	require.NotEmpty(t, waiterServer, "B's connection is open on one lock server: %v -> %v", base, open())

	require.NoError(t, sb.Crash(waiterServer))
	select {
	case err := <-blocked:
		require.ErrorIs(t, err, lockserver.ErrOutcomeUnknown, "a request in flight on the crashed lock server")
	case <-time.After(10 * time.Second):
		t.Fatal("the request in flight on the crashed lock server did not end")
	}
	// The next connection goes to the live server (a refused dial is
	// retried on the next backend, then the crashed one is marked down).
	require.Eventually(t, func() bool {
		_, err := waiter.Acquire(ctx, "tcp-other", 5*time.Second, 0)
		return err == nil
	}, 10*time.Second, 5*time.Millisecond, "acquires work again through the balancer")
	// B's acquire was not resent: once A releases, nobody holds the lock.
	require.NoError(t, holder.Release(ctx, "tcp", g.LockToken))
	info, err := holder.Get(ctx, "tcp")
	require.NoError(t, err)
	assert.False(t, info.Held, "B's acquire was resent and granted: %+v", info)

	for name := range sb.Addresses().LockServers {
		if name != waiterServer {
			require.NoError(t, sb.Crash(name))
		}
	}
	fresh := &lockserver.Client{BaseURL: sb.BalancerURL(), ClientID: "client-C",
		HTTP: &http.Client{Transport: &http.Transport{DialContext: sb.clientDialer("client-C"), DisableKeepAlives: true}}}
	_, err = fresh.Acquire(ctx, "tcp-none", 5*time.Second, 0)
	require.Error(t, err)
	assert.True(t, errors.Is(err, lockserver.ErrOutcomeUnknown) || errors.Is(err, lockserver.ErrUnavailable),
		"no lock server: the connection is reset: %v", err)
}

// TestTCPBalancerPairFailsOver: the VRRP pair works in tcp mode: the
// backup takes the virtual address when the master crashes, and acquires
// through the address work again.
func TestTCPBalancerPairFailsOver(t *testing.T) {
	sb := start(t, Config{Balancers: 2, BalancerMode: loadbalancer.ModeTCP, Workload: Workload{Disabled: true}})
	ctx := t.Context()
	c := pairClient(t, sb, "client-A")
	waitMaster(t, sb, "balancer-1")
	for _, name := range []string{"balancer-1", "balancer-2"} {
		require.Equal(t, loadbalancer.ModeTCP, sb.Balancer(name).Mode())
	}
	g, err := c.Acquire(ctx, "pair-tcp", 30*time.Second, 0)
	require.NoError(t, err)

	_, err = sb.Faults().Apply(ctx, faults.Step{Fault: faults.FaultCrash, Target: component.MasterBalancer})
	require.NoError(t, err)
	waitMaster(t, sb, "balancer-2")
	require.Eventually(t, func() bool {
		_, err := c.Renew(ctx, "pair-tcp", g.LockToken, 30*time.Second)
		return err == nil
	}, 10*time.Second, 5*time.Millisecond, "the lock service answers through the virtual address again")
	require.NoError(t, c.Release(ctx, "pair-tcp", g.LockToken))
}
