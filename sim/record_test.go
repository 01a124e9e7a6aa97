package sim

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
)

type fakeRecord struct {
	from     time.Duration
	grants   []lockserver.RecordedGrant
	ended    map[int64]time.Duration
	released map[string]time.Duration
}

func (f fakeRecord) Grants() []lockserver.RecordedGrant { return f.grants }
func (f fakeRecord) From() time.Duration                { return f.from }
func (f fakeRecord) Ended(rev int64) (time.Duration, bool) {
	at, ok := f.ended[rev]
	return at, ok
}
func (f fakeRecord) Released(hash string) (time.Duration, bool) {
	at, ok := f.released[hash]
	return at, ok
}

// EtcdRecord hands history.Resolve what the observer saw: grants with their
// deletion, and receipts for exactly the unknown releases of the history.
func TestEtcdRecordFromObserver(t *testing.T) {
	o := fakeRecord{
		grants: []lockserver.RecordedGrant{
			{Owner: "client-1", Resource: "r", Revision: 10, TTL: 2 * time.Second, Seen: 150},
			{Owner: "client-2", Resource: "r", Revision: 20, TTL: 2 * time.Second, Seen: 450},
		},
		released: map[string]time.Duration{lockserver.HashToken("tok-20"): 999, lockserver.HashToken("tok-ok"): 5},
		ended:    map[int64]time.Duration{10: 250},
		from:     42,
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
	got, n := history.Resolve(ops, sb.EtcdRecord(ops))
	assert.Zero(t, n)
	for _, op := range got {
		assert.Equal(t, unknown, op.Outcome, "%s stays unknown", op.Op)
	}
}
