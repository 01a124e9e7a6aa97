package history

import (
	"slices"
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

// A grant etcd committed before an acquire was called is not that acquire's
// effect. The case from a follower-unheard run: client-1's acquire at 3.06 s
// was handed the lock (fencing 154) and answered "did not take effect"
// (wrongly: the lock server now answers "unknown" there); the lock expired
// at 5.1 s, client-3 held it from 5.17 s (159), and client-1's next acquire,
// called at 7.11 s with its outcome unknown, lies between client-1's tokens
// 149 and 162. Giving it grant 154 moves that grant after 159 and invents a
// violation; it must be settled as "no grant was recorded".
func TestResolveNeverGivesAnAcquireAnEarlierGrant(t *testing.T) {
	ops := []Op{
		acquireOK("client-1", r1, "tok-149", 149, 2940, 2976, 2),
		release("client-1", r1, "tok-149", 3028, 3040, OK, ""),
		acquireFail("client-1", r1, 3061, 7094),
		acquireOK("client-3", r1, "tok-159", 159, 5166, 5190, 2),
		release("client-3", r1, "tok-159", 5246, 5251, OK, ""),
		acquireUnknown("client-1", r1, 7114, 2),
		acquireOK("client-1", r1, "tok-162", 162, 9150, 9171, 2),
	}
	rec := Record{
		Grants: []Grant{
			{Owner: "client-1", Resource: r1, Revision: 149, TTL: 2 * time.Second, Seen: ms(2970), Ended: ms(3035)},
			{Owner: "client-1", Resource: r1, Revision: 154, TTL: 2 * time.Second, Seen: ms(3100), Ended: ms(5100)},
			{Owner: "client-3", Resource: r1, Revision: 159, TTL: 2 * time.Second, Seen: ms(5185), Ended: ms(5250)},
			{Owner: "client-1", Resource: r1, Revision: 162, TTL: 2 * time.Second, Seen: ms(9165)},
		},
		Now: ms(10000),
	}
	got, n := Resolve(ops, rec)
	require.Equal(t, 1, n)
	i := slices.IndexFunc(got, func(op Op) bool { return op.Call == ms(7114) })
	require.GreaterOrEqual(t, i, 0)
	assert.Equal(t, Fail, got[i].Outcome, "grant 154 was seen at 3.1 s, before this acquire was called")
	assert.Len(t, got, len(ops), "no release synthesized for a grant that is not this acquire's")
	assert.Equal(t, Linearizable, Check(got, Options{}).Lock)
}

// Unexplained finds a grant etcd made to a client whose acquire answered
// "no effect": the lock server's lie of the follower-unheard run, which
// Resolve cannot settle (the acquire was not unknown). Grants that an
// answer accounts for are not listed.
func TestUnexplained(t *testing.T) {
	grant := func(owner string, rev, seen int64) Grant {
		return Grant{Owner: owner, Resource: r1, Revision: rev, TTL: 2 * time.Second, Seen: ms(seen)}
	}
	tests := []struct {
		name string
		ops  []Op
		rec  Record
		want []int64 // revisions
	}{
		{
			name: "a failed acquire that etcd granted",
			ops: []Op{
				acquireOK("client-1", r1, "t149", 149, 2940, 2976, 2),
				acquireFail("client-1", r1, 3061, 7094),
				acquireOK("client-1", r1, "t162", 162, 9150, 9171, 2),
			},
			rec:  Record{Grants: []Grant{grant("client-1", 149, 2970), grant("client-1", 154, 3100), grant("client-1", 162, 9165)}},
			want: []int64{154},
		},
		{
			name: "an unknown acquire may have made it",
			ops: []Op{
				acquireOK("client-1", r1, "t149", 149, 2940, 2976, 2),
				acquireUnknown("client-1", r1, 3061, 2),
			},
			rec: Record{Grants: []Grant{grant("client-1", 154, 3100)}},
		},
		{
			name: "an acquire granted twice: handed a lock that ended unseen, then granted",
			ops: []Op{
				acquireOK("client-1", r1, "t162", 162, 3000, 9171, 2),
			},
			rec: Record{Grants: []Grant{grant("client-1", 154, 3100), grant("client-1", 162, 9165)}},
		},
		{
			name: "seen late, after the client's next acquire began",
			ops: []Op{
				acquireOK("client-1", r1, "t162", 162, 3000, 3050, 2),
				acquireFail("client-1", r1, 3070, 4070),
			},
			rec: Record{Grants: []Grant{grant("client-1", 154, 3100), grant("client-1", 162, 3060)}},
		},
		{
			name: "a later acquire cannot have made an earlier grant",
			ops: []Op{
				acquireFail("client-1", r1, 1000, 2000),
				acquireUnknown("client-1", r1, 5000, 2),
			},
			rec:  Record{Grants: []Grant{grant("client-1", 10, 1500)}},
			want: []int64{10},
		},
		{
			name: "before the record is complete, or nobody's in the history",
			ops:  []Op{acquireFail("client-1", r1, 1000, 2000)},
			rec:  Record{Grants: []Grant{grant("client-1", 10, 1500), grant("client-9", 11, 3000)}, From: ms(2000)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int64
			for _, g := range Unexplained(tt.ops, tt.rec) {
				got = append(got, g.Revision)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}
