package live

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
	"github.com/locksim/locksim/sim/clients"
	"github.com/locksim/locksim/web"
)

func i64(v int64) *int64 { return &v }

func TestWebOpOutcomes(t *testing.T) {
	tests := []struct {
		name string
		op   history.Op
		want web.Op
	}{
		{"pending", history.Op{Client: "client-1", Op: "acquire", Resource: "r", Call: 5, Outcome: history.Unknown},
			web.Op{ID: 7, Client: "client-1", Op: "acquire", Resource: "r", Call: 5, Outcome: ""}},
		{"ok acquire", history.Op{Client: "client-1", Op: "acquire", Resource: "r", Call: 5, Return: i64(9), Outcome: history.OK, Output: history.Output{FencingToken: 42}},
			web.Op{ID: 7, Client: "client-1", Op: "acquire", Resource: "r", Call: 5, Return: 9, Outcome: "ok", Detail: "fencing token 42"}},
		{"unknown after an error", history.Op{Client: "client-2", Op: "release", Resource: "r", Call: 5, Outcome: history.Unknown, Output: history.Output{Error: "timeout"}},
			web.Op{ID: 7, Client: "client-2", Op: "release", Resource: "r", Call: 5, Outcome: "unknown", Detail: "timeout"}},
		{"stale write rejected", history.Op{Client: "client-1", Op: "write", Resource: "r", Call: 5, Return: i64(6), Outcome: history.Fail, Input: history.Input{FencingToken: 3}, Output: history.Output{Rejected: true}},
			web.Op{ID: 7, Client: "client-1", Op: "write", Resource: "r", Call: 5, Return: 6, Outcome: "fail", Detail: "stale token 3 rejected"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := webOp(7, tt.op)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestBuildLocksShowsHolderBelieversAndWaiters(t *testing.T) {
	held := map[string]lockserver.HeldLock{"a": {Owner: "client-1", FencingToken: 10, Since: time.Second, TTL: 2 * time.Second}}
	cs := []clients.State{
		{Name: "client-1", Resource: "a", Believes: true, Phase: component.PhaseAfterRead},
		{Name: "client-2", Resource: "a", Believes: true, Phase: component.PhaseBeforeWrite}, // a stale believer
		{Name: "client-3", Resource: "a", Phase: component.PhaseAcquiring},
		{Name: "client-4", Resource: "b", Phase: component.PhaseAcquiring, Paused: true},
	}
	got := buildLocks([]string{"a", "b"}, held, cs, 2500*time.Millisecond)
	want := []web.Lock{
		{Resource: "a", Held: true, Owner: "client-1", FencingToken: 10, ExpiresInMs: 500, TTLms: 2000, Waiters: 1, Believers: []string{"client-1", "client-2"}},
		{Resource: "b", Believers: []string{}},
	}
	assert.Equal(t, want, got)
}

func TestFrameLogUpsertsAndCaps(t *testing.T) {
	l := newFrameLog(10)
	l.apply(web.Frame{Seq: 1, Ops: []web.Op{{ID: 0, Outcome: ""}, {ID: 1, Outcome: "ok"}}, Faults: []web.Fault{{ID: 1}}})
	l.apply(web.Frame{Seq: 2, Ops: []web.Op{{ID: 0, Outcome: "ok"}}, Faults: []web.Fault{{ID: 1, End: 5}}})
	got := l.snapshot()
	assert.Equal(t, uint64(2), got.Seq)
	assert.Equal(t, []web.Op{{ID: 0, Outcome: "ok"}, {ID: 1, Outcome: "ok"}}, got.Ops)
	assert.Equal(t, []web.Fault{{ID: 1, End: 5}}, got.Faults)

	for i := 2; i < 30; i++ {
		l.apply(web.Frame{Ops: []web.Op{{ID: uint64(i)}}})
	}
	got = l.snapshot()
	require.LessOrEqual(t, len(got.Ops), 10)
	assert.Equal(t, uint64(29), got.Ops[len(got.Ops)-1].ID, "the most recent ops are kept")
}

func TestFanoutMergesWhatASlowSubscriberMissed(t *testing.T) {
	var fo fanout
	ch, cancel := fo.subscribe(1)
	defer cancel()
	fo.publish(web.Frame{Seq: 1, Ops: []web.Op{{ID: 1}}})
	fo.publish(web.Frame{Seq: 2, Ops: []web.Op{{ID: 2}}}) // channel full: carried
	fo.publish(web.Frame{Seq: 3, Ops: []web.Op{{ID: 3}}}) // still full: merged into the carry
	assert.Equal(t, uint64(1), (<-ch).Seq)
	fo.publish(web.Frame{Seq: 4, Ops: []web.Op{{ID: 4}}})
	got := <-ch
	assert.Equal(t, uint64(4), got.Seq)
	assert.Equal(t, []web.Op{{ID: 2}, {ID: 3}, {ID: 4}}, got.Ops, "no op lost")
}

// fakeTime is a settable clock for stepClock.
type fakeTime struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeTime) now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeTime) add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

func TestStepClockStopsBeforeEachStep(t *testing.T) {
	ft := &fakeTime{t: time.Unix(1000, 0)}
	c := newStepClock(ft.now, []time.Duration{time.Second, 3 * time.Second}, true)
	defer c.stop()
	since := func() time.Duration { return c.Now().Sub(c.epoch) }

	ft.add(500 * time.Millisecond)
	assert.Equal(t, 500*time.Millisecond, since())
	assert.False(t, c.waiting())
	assert.False(t, c.release(), "nothing to release before the stop")

	ft.add(10 * time.Second) // the clock stops just before the first step
	assert.Equal(t, time.Second-1, since())
	assert.True(t, c.waiting())

	require.True(t, c.release())
	ft.add(time.Second) // runs on from where it stopped, up to the second step
	assert.Equal(t, 2*time.Second-1, since())
	assert.False(t, c.waiting())
	ft.add(5 * time.Second)
	assert.Equal(t, 3*time.Second-1, since())
	assert.True(t, c.waiting())

	c.setStepMode(false) // off: time flows again, without a jump
	assert.Equal(t, 3*time.Second-1, since())
	ft.add(time.Second)
	assert.Equal(t, 4*time.Second-1, since())
}

func TestStepClockAfterWakesOnRelease(t *testing.T) {
	ft := &fakeTime{t: time.Unix(1000, 0)}
	c := newStepClock(ft.now, []time.Duration{time.Second}, true)
	defer c.stop()
	ft.add(2 * time.Second) // stopped at 1s-1ns
	ch := c.After(1)
	select {
	case <-ch:
		t.Fatal("After fired while the clock was stopped")
	case <-time.After(50 * time.Millisecond):
	}
	require.True(t, c.release())
	ft.add(time.Millisecond)
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("After did not fire once released")
	}
}
