package history

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Unknown acquires take the grant etcd recorded between the client's
// neighbouring successful acquires, or fail when there is none; unknown
// releases succeed when etcd holds their release receipt, else fail claiming
// nothing.
func TestResolveFromEtcdRecord(t *testing.T) {
	rec := Record{
		Grants: []Grant{
			{Owner: "client-1", Resource: "r", Revision: 10, TTL: 2 * time.Second, Seen: 150, Ended: 250},
			{Owner: "client-1", Resource: "r", Revision: 20, TTL: 2 * time.Second, Seen: 450},
		},
		Released: map[string]int64{"tok-20": 9999},
		Now:      10000,
	}
	unknown := Outcome(Unknown)
	ops := []Op{
		// etcd granted rev 10 to this acquire, then deleted it (the lock
		// server revoked the lease): resolved ok, plus a synthesized release.
		{Client: "client-1", Op: OpAcquire, Resource: "r", Call: 100, Outcome: unknown},
		// a known grant (rev 20)
		{Client: "client-1", Op: OpAcquire, Resource: "r", Call: 400, Return: ptr(int64(500)), Outcome: OK, Output: Output{FencingToken: 20, LockToken: "tok-20"}},
		// its release: etcd holds the receipt
		{Client: "client-1", Op: OpRelease, Resource: "r", Call: 550, Input: Input{LockToken: "tok-20"}, Outcome: unknown},
		// a release of a token etcd has no receipt for
		{Client: "client-1", Op: OpRelease, Resource: "r", Call: 600, Input: Input{LockToken: "tok-x"}, Outcome: unknown},
		// an acquire etcd recorded no grant for
		{Client: "client-1", Op: OpAcquire, Resource: "r", Call: 700, Outcome: unknown},
	}
	got, n := Resolve(ops, rec)
	assert.Equal(t, 4, n)
	assert.Equal(t, unknown, ops[0].Outcome, "the input is not modified")
	require.Len(t, got, 6, "one release synthesized for the grant nobody learned the token of")
	assert.Equal(t, OK, got[0].Outcome)
	assert.Equal(t, int64(10), got[0].Output.FencingToken)
	assert.Equal(t, int64(150), *got[0].Return)
	synth := got[1]
	assert.Equal(t, OpRelease, synth.Op, "etcd deleted grant 10 (revoked or expired): the lock was free again")
	assert.Equal(t, got[0].Output.LockToken, synth.Input.LockToken)
	assert.Equal(t, int64(250), *synth.Return)
	assert.Equal(t, OK, got[3].Outcome, "the release receipt proves the release took effect")
	assert.Equal(t, int64(9999), *got[3].Return)
	assert.Equal(t, Fail, got[4].Outcome)
	assert.Equal(t, ResolveCode, got[4].Output.Code, "a resolved failure claims nothing about the holder")
	assert.Equal(t, int64(10000), *got[4].Return)
	assert.Equal(t, Fail, got[5].Outcome, "no grant recorded: the acquire had no effect")
	assert.Equal(t, int64(10000), *got[5].Return, "no later acquire: it was over when the record was read")
}

// An operation called before the record is complete stays unknown: its
// grant or receipt may be among what the record forgot.
func TestResolveLeavesWhatTheRecordMayHaveForgotten(t *testing.T) {
	unknown := Outcome(Unknown)
	ops := []Op{
		{Client: "client-1", Op: OpAcquire, Resource: "r", Call: 100, Outcome: unknown},
		{Client: "client-1", Op: OpRelease, Resource: "r", Call: 150, Input: Input{LockToken: "t"}, Outcome: unknown},
		{Client: "client-2", Op: OpAcquire, Resource: "r", Call: 300, Outcome: unknown},
	}
	got, n := Resolve(ops, Record{From: 200, Now: 1000})
	assert.Equal(t, 1, n)
	assert.Equal(t, unknown, got[0].Outcome, "called before the record begins")
	assert.Equal(t, unknown, got[1].Outcome)
	assert.Equal(t, Fail, got[2].Outcome, "called after it: no grant means none was made")
}

// Settling an unknown acquire from etcd can reveal a double grant that the
// unknown outcome hid, and settling it as "not applied" keeps the history
// linearizable.
func TestResolveRevealsWhatUnknownHid(t *testing.T) {
	ops := []Op{
		acquireOK("client-a", r1, "token-a", 5, 0, 10, 1),
		acquireUnknown("client-b", r1, 50, 1),
		release("client-a", r1, "token-a", 1500, 1510, OK, ""),
	}
	assert.Equal(t, Linearizable, Check(ops, Options{}).Lock)
	granted, n := Resolve(ops, Record{Grants: []Grant{{Owner: "client-b", Resource: r1, Revision: 6, TTL: time.Second, Seen: ms(200)}}})
	require.Equal(t, 1, n)
	assert.Equal(t, Violated, Check(granted, Options{}).Lock, "etcd granted b's acquire while a held the lock")
	none, _ := Resolve(ops, Record{Now: ms(2000)})
	assert.Equal(t, Fail, none[1].Outcome)
	assert.Equal(t, Linearizable, Check(none, Options{}).Lock)
}
