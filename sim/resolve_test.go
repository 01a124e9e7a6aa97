package sim

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
)

// TestResolveUnknownFromEtcd: unknown acquires take the grant etcd recorded
// between the client's neighbouring successful acquires, or fail when there
// is none; unknown releases succeed when etcd holds their release receipt,
// else fail claiming nothing.
func TestResolveUnknownFromEtcd(t *testing.T) {
	o := &observer{
		held: map[string]heldLock{},
		grants: []grantRec{
			{Owner: "client-1", Resource: "r", Revision: 10, TTL: 2 * time.Second, Seen: 150},
			{Owner: "client-1", Resource: "r", Revision: 20, TTL: 2 * time.Second, Seen: 450},
		},
		released: map[string]time.Duration{lockserver.HashToken("tok-10"): 300},
	}
	sb := &Sandbox{observer: o, start: time.Now()}
	ops := []history.Op{
		{Client: "client-1", Op: "acquire", Resource: "r", Call: 100, Outcome: history.Outcome(history.Unknown)},                                                            // etcd granted rev 10
		{Client: "client-1", Op: "release", Resource: "r", Call: 200, Input: history.Input{LockToken: "tok-10"}, Outcome: history.Outcome(history.Unknown)},                 // receipt exists
		{Client: "client-1", Op: "acquire", Resource: "r", Call: 400, Return: i64(500), Outcome: history.OK, Output: history.Output{FencingToken: 20, LockToken: "tok-20"}}, // known
		{Client: "client-1", Op: "release", Resource: "r", Call: 600, Input: history.Input{LockToken: "tok-20"}, Outcome: history.Outcome(history.Unknown)},                 // no receipt
		{Client: "client-1", Op: "acquire", Resource: "r", Call: 700, Outcome: history.Outcome(history.Unknown)},                                                            // no grant left
	}
	got, n := sb.resolveUnknownAcquires(ops)
	assert.Equal(t, 4, n)
	assert.Equal(t, history.OK, got[0].Outcome)
	assert.Equal(t, int64(10), got[0].Output.FencingToken)
	assert.Equal(t, int64(150), *got[0].Return)
	assert.Equal(t, history.OK, got[1].Outcome, "the release receipt proves the release took effect")
	assert.Equal(t, int64(300), *got[1].Return)
	assert.Equal(t, history.Fail, got[3].Outcome)
	assert.Equal(t, history.ResolveCode, got[3].Output.Code, "a resolved failure claims nothing about the holder")
	assert.Equal(t, history.Fail, got[4].Outcome, "no grant recorded: the acquire had no effect")
}
