package sim

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
)

// TestResolveUnknownFromEtcd: unknown acquires take the grant etcd recorded
// between the client's neighbouring successful acquires, or fail when there
// is none; unknown releases succeed when etcd holds their release receipt,
// else fail claiming nothing.
func TestResolveUnknownFromEtcd(t *testing.T) {
	rec := fakeRecord{
		grants: []lockserver.RecordedGrant{
			{Owner: "client-1", Resource: "r", Revision: 10, TTL: 2 * time.Second, Seen: 150},
			{Owner: "client-1", Resource: "r", Revision: 20, TTL: 2 * time.Second, Seen: 450},
		},
		released: map[string]time.Duration{lockserver.HashToken("tok-20"): 9999},
		ended:    map[int64]time.Duration{10: 250},
	}
	sb := &Sandbox{start: time.Now()}
	unknown := history.Outcome(history.Unknown)
	ops := []history.Op{
		// etcd granted rev 10 to this acquire, then deleted it (the lock
		// server revoked the lease): resolved ok, plus a synthesized release.
		{Client: "client-1", Op: "acquire", Resource: "r", Call: 100, Outcome: unknown},
		// a known grant (rev 20)
		{Client: "client-1", Op: "acquire", Resource: "r", Call: 400, Return: i64(500), Outcome: history.OK, Output: history.Output{FencingToken: 20, LockToken: "tok-20"}},
		// its release: etcd holds the receipt
		{Client: "client-1", Op: "release", Resource: "r", Call: 550, Input: history.Input{LockToken: "tok-20"}, Outcome: unknown},
		// a release of a token etcd has no receipt for
		{Client: "client-1", Op: "release", Resource: "r", Call: 600, Input: history.Input{LockToken: "tok-x"}, Outcome: unknown},
		// an acquire etcd recorded no grant for
		{Client: "client-1", Op: "acquire", Resource: "r", Call: 700, Outcome: unknown},
	}
	got, n := sb.resolveUnknownAcquires(rec, ops)
	assert.Equal(t, 4, n)
	require.Len(t, got, 6, "one release synthesized for the grant nobody learned the token of")
	assert.Equal(t, history.OK, got[0].Outcome)
	assert.Equal(t, int64(10), got[0].Output.FencingToken)
	assert.Equal(t, int64(150), *got[0].Return)
	synth := got[1]
	assert.Equal(t, history.OpRelease, synth.Op, "etcd deleted grant 10 (revoked or expired): the lock was free again")
	assert.Equal(t, got[0].Output.LockToken, synth.Input.LockToken)
	assert.Equal(t, int64(250), *synth.Return)
	assert.Equal(t, history.OK, got[3].Outcome, "the release receipt proves the release took effect")
	assert.Equal(t, int64(9999), *got[3].Return)
	assert.Equal(t, history.Fail, got[4].Outcome)
	assert.Equal(t, history.ResolveCode, got[4].Output.Code, "a resolved failure claims nothing about the holder")
	assert.Equal(t, history.Fail, got[5].Outcome, "no grant recorded: the acquire had no effect")
}

// fakeRecord is a fixed etcdRecord.
type fakeRecord struct {
	grants   []lockserver.RecordedGrant
	released map[string]time.Duration
	ended    map[int64]time.Duration
}

func (f fakeRecord) Grants() []lockserver.RecordedGrant { return f.grants }

func (f fakeRecord) Ended(rev int64) (time.Duration, bool) {
	at, ok := f.ended[rev]
	return at, ok
}

func (f fakeRecord) Released(hash string) (time.Duration, bool) {
	at, ok := f.released[hash]
	return at, ok
}
