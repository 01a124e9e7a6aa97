package sim

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
)

// pairClient is a lock API client that reaches the entry point the way a
// simulated client does: through the network emulator, the virtual address
// resolved to its owner when it connects.
func pairClient(t *testing.T, sb *Sandbox, id string) *lockserver.Client {
	tr := &http.Transport{DialContext: sb.clientDialer(id), MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	return &lockserver.Client{BaseURL: sb.BalancerURL(), HTTP: &http.Client{Transport: tr}, ClientID: id}
}

// balancer returns the state of one balancer of a group.
func balancer(sb *Sandbox, name string) BalancerState {
	for _, b := range sb.State().Balancers {
		if b.Name == name {
			return b
		}
	}
	return BalancerState{}
}

func vipOwner(sb *Sandbox) string {
	owner, _ := sb.VirtualAddress().Owner()
	return owner
}

// waitMaster waits until name is master and owns the virtual address.
func waitMaster(t *testing.T, sb *Sandbox, name string) {
	t.Helper()
	require.Eventually(t, func() bool {
		return balancer(sb, name).State == "master" && vipOwner(sb) == name
	}, 20*time.Second, 5*time.Millisecond, "%s master and owner of the virtual address", name)
}

// waitBackup waits until balancer name is a backup that has heard master's
// adverts. It gets there a moment after master became master (a backup
// starts without a master, and steps down or follows only when an advert
// arrives), so it is waited for, not asserted at one instant.
func waitBackup(t *testing.T, sb *Sandbox, name, master string) {
	t.Helper()
	require.Eventually(t, func() bool {
		b := balancer(sb, name)
		return b.State == "backup" && b.Master == master
	}, 20*time.Second, 5*time.Millisecond, "%s a backup of %s", name, master)
}

func TestOneBalancerIsTheEntryPoint(t *testing.T) {
	sb := start(t, Config{Workload: Workload{Disabled: true}})
	assert.Nil(t, sb.VirtualAddress())
	st := sb.State()
	assert.Equal(t, component.Balancer, st.Balancer.Name)
	assert.Empty(t, st.Balancers)
	assert.Nil(t, st.VIP)
	addrs := sb.Addresses()
	assert.Empty(t, addrs.Balancers)
	assert.Equal(t, "http://"+sb.Balancer(component.Balancer).Addr(), addrs.Balancer)
	assert.Contains(t, sb.Members(), component.Balancer)
	got, err := sb.Resolve(component.MasterBalancer)
	require.NoError(t, err)
	assert.Equal(t, component.Balancer, got, "the only balancer is trivially master")
	assert.Empty(t, sb.Status().VIPOwner)
}

// TestBalancerPairFailsOver crashes the master of a pair: a request in
// flight on it ends unknown and is never resent; the backup takes the
// virtual address after its master-down interval, new acquires through the
// address succeed; restarted, the preferred balancer preempts.
func TestBalancerPairFailsOver(t *testing.T) {
	sb := start(t, Config{Balancers: 2, Workload: Workload{Disabled: true}})
	ctx := t.Context()
	a, b := pairClient(t, sb, "client-A"), pairClient(t, sb, "client-B")
	addrs := sb.Addresses()
	require.Len(t, addrs.Balancers, 2)
	assert.Equal(t, sb.VirtualAddress().URL(), addrs.Balancer, "the entry point is the virtual address")
	waitMaster(t, sb, "balancer-1")
	waitBackup(t, sb, "balancer-2", "balancer-1")
	got, err := sb.Resolve(component.MasterBalancer)
	require.NoError(t, err)
	assert.Equal(t, "balancer-1", got)

	g, err := a.Acquire(ctx, "pair", 30*time.Second, 0)
	require.NoError(t, err)
	// B blocks on the held lock, its request in flight on balancer-1.
	blocked := make(chan error, 1)
	go func() {
		_, err := b.Acquire(ctx, "pair", 30*time.Second, 20*time.Second)
		blocked <- err
	}()
	require.Eventually(t, func() bool {
		info, err := a.Get(ctx, "pair")
		return err == nil && info.Waiters == 1
	}, 10*time.Second, 5*time.Millisecond, "B waits for the lock")

	crashed := time.Now()
	_, err = sb.Faults().Apply(ctx, faults.Step{Fault: faults.FaultCrash, Target: component.MasterBalancer})
	require.NoError(t, err)
	select {
	case err := <-blocked:
		require.ErrorIs(t, err, lockserver.ErrOutcomeUnknown, "a request in flight on the crashed balancer: outcome unknown")
	case <-time.After(10 * time.Second):
		t.Fatal("the request in flight on the crashed balancer did not end")
	}

	// The backup takes over by the protocol alone, and acquires work again.
	waitMaster(t, sb, "balancer-2")
	require.Eventually(t, func() bool {
		_, err := a.Renew(ctx, "pair", g.LockToken, 30*time.Second)
		return err == nil
	}, 10*time.Second, 5*time.Millisecond, "the lock service answers through the virtual address again")
	t.Logf("crash -> first answer through balancer-2: %v", time.Since(crashed))
	evs := sb.BalancerEvents()
	i := slices.IndexFunc(evs, func(e BalancerEvent) bool { return e.Balancer == "balancer-2" && e.To == "master" })
	require.GreaterOrEqual(t, i, 0, "balancer-2's takeover is logged: %+v", evs)
	assert.Contains(t, evs[i].Reason, "no advert from balancer-1")

	// B's acquire was not resent: once A releases, nobody holds the lock.
	require.NoError(t, a.Release(ctx, "pair", g.LockToken))
	info, err := a.Get(ctx, "pair")
	require.NoError(t, err)
	assert.False(t, info.Held, "B's acquire was resent and granted: %+v", info)

	// Restarted, balancer-1 (priority 110 > 100) preempts.
	_, err = sb.Faults().Apply(ctx, faults.Step{Fault: faults.FaultRestart, Target: "balancer-1"})
	require.NoError(t, err)
	waitMaster(t, sb, "balancer-1")
	waitBackup(t, sb, "balancer-2", "balancer-1")
	_, err = a.Acquire(ctx, "pair", 5*time.Second, 0)
	require.NoError(t, err)
}

// TestBalancerPairPausedMaster freezes the master: the backup takes over;
// thawed, the old master never left the master state, advertises at once
// and takes the address back.
func TestBalancerPairPausedMaster(t *testing.T) {
	sb := start(t, Config{Balancers: 2, NoPreempt: true, Workload: Workload{Disabled: true}})
	ctx := t.Context()
	waitMaster(t, sb, "balancer-1")
	id, err := sb.Faults().Apply(ctx, faults.Step{Fault: faults.FaultPause, Target: "balancer:master"})
	require.NoError(t, err)
	waitMaster(t, sb, "balancer-2")
	st := balancer(sb, "balancer-1")
	assert.True(t, st.Paused)
	assert.Equal(t, "master", st.State, "frozen, it still believes it is master")
	c := pairClient(t, sb, "client-A")
	_, err = c.Acquire(ctx, "p", 5*time.Second, 0)
	require.NoError(t, err, "served by balancer-2 while balancer-1 is frozen")

	sb.Faults().Undo(ctx, id)
	// nopreempt plays no part: balancer-1 never was a backup.
	waitMaster(t, sb, "balancer-1")
	waitBackup(t, sb, "balancer-2", "balancer-1") // it yields to the thawed master
}

// TestBalancerPairSplitBrain cuts the adverts between the two balancers:
// both become master and the virtual address goes back and forth between
// them; the clients' requests end unknown now and then, but the lock
// service stays linearizable, because the balancers keep no state and etcd
// decides.
func TestBalancerPairSplitBrain(t *testing.T) {
	sb := start(t, Config{Balancers: 2, Clients: 3, Workload: Workload{
		Resources: []string{"a", "b"}, Hold: 5 * time.Millisecond, Think: 5 * time.Millisecond,
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	waitMaster(t, sb, "balancer-1")
	sb.StartWorkload(ctx)
	waitCycles(t, sb, 10)

	id, err := sb.Faults().Apply(ctx, faults.Step{Fault: faults.FaultPartition, Groups: [][]string{{"balancer-1"}, {"balancer-2"}}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return balancer(sb, "balancer-1").State == "master" && balancer(sb, "balancer-2").State == "master"
	}, 20*time.Second, 5*time.Millisecond, "both believe they are master")
	moves := sb.VirtualAddress().Moves()
	require.Eventually(t, func() bool { return sb.VirtualAddress().Moves() >= moves+4 }, 20*time.Second, 5*time.Millisecond,
		"the address goes back and forth between the two masters")
	before := sb.Status().Cycles
	require.Eventually(t, func() bool { return sb.Status().Cycles >= before+10 }, 20*time.Second, 10*time.Millisecond,
		"the clients make progress through two masters")

	sb.Faults().Undo(ctx, id)
	require.Eventually(t, func() bool {
		return balancer(sb, "balancer-2").State == "backup" && vipOwner(sb) == "balancer-1"
	}, 20*time.Second, 5*time.Millisecond, "after the heal balancer-2 yields")
	sb.DrainWorkload(ctx)

	require.NoError(t, sb.Observer().Sync(ctx))
	ops := sb.Recorder().Ops()
	rec, err := sb.EtcdRecord(ops)
	require.NoError(t, err)
	ops, _ = history.Resolve(ops, rec)
	res := history.Check(ops, history.Options{Timeout: time.Minute})
	t.Logf("split brain: %d moves of the address, acquires ok/fail/unknown %d/%d/%d", sb.VirtualAddress().Moves(),
		res.Counts.Acquire.OK, res.Counts.Acquire.Fail, res.Counts.Acquire.Unknown)
	assert.Equal(t, history.Linearizable, res.Lock, "lock")
	assert.Equal(t, history.Linearizable, res.Resource, "resource")
}
