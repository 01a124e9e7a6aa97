package sim

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
)

// EtcdRecord hands history.Resolve what the observer saw: grants with their
// deletion, and receipts for exactly the unknown releases of the history.
func TestEtcdRecordFromObserver(t *testing.T) {
	o := lockserver.ObservedRecord{
		Grants: []lockserver.RecordedGrant{
			{Owner: "client-1", Resource: "r", Revision: 10, TTL: 2 * time.Second, Seen: 150},
			{Owner: "client-2", Resource: "r", Revision: 20, TTL: 2 * time.Second, Seen: 450},
		},
		Released: map[string]time.Duration{lockserver.HashToken("tok-20"): 999, lockserver.HashToken("tok-ok"): 5},
		Ended:    map[int64]time.Duration{10: 250},
		From:     42,
	}
	unknown := history.Outcome(history.Unknown)
	ret := int64(7)
	got := etcdRecord(o, 10_000, []history.Op{
		{Client: "client-2", Op: history.OpRelease, Resource: "r", Input: history.Input{LockToken: "tok-20"}, Outcome: unknown},
		{Client: "client-2", Op: history.OpRelease, Resource: "r", Input: history.Input{LockToken: "tok-x"}, Outcome: unknown},
		{Client: "client-1", Op: history.OpRelease, Resource: "r", Input: history.Input{LockToken: "tok-ok"}, Return: &ret, Outcome: history.OK},
	})
	assert.Equal(t, []history.Grant{
		{Owner: "client-1", Resource: "r", Revision: 10, TTL: 2 * time.Second, Seen: 150, Ended: 250},
		{Owner: "client-2", Resource: "r", Revision: 20, TTL: 2 * time.Second, Seen: 450},
	}, got.Grants)
	assert.Equal(t, map[string]int64{"tok-20": 999}, got.Released)
	assert.Equal(t, int64(10_000), got.Now)
	assert.Equal(t, int64(42), got.From)
}

// A lock server that is not locksim's own keeps its locks in etcd its own
// way: its record holds nothing and begins now, so history.Resolve leaves
// every unknown outcome unknown instead of settling it as "no effect".
func TestEtcdRecordOfACustomLockServerSettlesNothing(t *testing.T) {
	sb := &Sandbox{cfg: Config{LockServerCmd: "srv --listen {listen}"}, start: time.Now().Add(-time.Second)}
	unknown := history.Outcome(history.Unknown)
	ops := []history.Op{
		{Client: "client-1", Op: history.OpAcquire, Resource: "r", Call: 100, Outcome: unknown},
		{Client: "client-2", Op: history.OpRelease, Resource: "r", Input: history.Input{LockToken: "t"}, Call: 200, Outcome: unknown},
	}
	rec, err := sb.EtcdRecord(ops)
	assert.NoError(t, err)
	got, n := history.Resolve(ops, rec)
	assert.Zero(t, n)
	for _, op := range got {
		assert.Equal(t, unknown, op.Outcome, "%s stays unknown", op.Op)
	}
}

// With StreamHistory, EtcdRecord holds every grant of the run however little
// EtcdRecordRetain keeps in memory; without it, memory is all there is (the
// control: the retention really forgets).
func TestEtcdRecordStreamedKeepsEveryGrant(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream bool
	}{{"streamed", true}, {"memory only", false}} {
		t.Run(tc.name, func(t *testing.T) {
			const clients, cycles = 2, 15
			sb := start(t, Config{
				Clients:          clients,
				StreamHistory:    tc.stream,
				HistoryKeep:      5,
				EtcdRecordRetain: time.Nanosecond,
				Workload:         Workload{Cycles: cycles, TTL: 5 * time.Second, Wait: 30 * time.Second, Hold: time.Millisecond, Think: time.Millisecond},
			})
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			sb.StartWorkload(ctx)
			require.NoError(t, sb.WaitWorkload(ctx))
			require.NoError(t, sb.Observer().Sync(ctx))
			ops, err := sb.History()
			require.NoError(t, err)
			rec, err := sb.EtcdRecord(ops)
			require.NoError(t, err)
			if !tc.stream {
				assert.Less(t, len(rec.Grants), clients*cycles, "memory keeps only the last instant")
				assert.Positive(t, rec.From, "and says so")
				return
			}
			acquires := 0
			for _, op := range ops {
				if op.Op == history.OpAcquire && op.Outcome == history.OK {
					acquires++
				}
			}
			assert.Equal(t, clients*cycles, acquires, "the streamed history has every acquire")
			require.Len(t, rec.Grants, clients*cycles, "one grant per cycle")
			for _, g := range rec.Grants {
				assert.Positive(t, g.Ended, "each grant was released: %+v", g)
			}
			assert.Zero(t, rec.From)
		})
	}
}
