package faults

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A click (Apply) and a scenario's Runner share one Injector: one event log
// with unique ids, and one count of cuts, so the scenario's partition ending
// does not mend a link the click still cuts.
func TestInjectorClicksAndRunnerShareOneLogAndOneCutCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		env.members = []string{"etcd-1", "etcd-2"}
		in := &Injector{Env: env}
		clickID, err := in.Apply(t.Context(), Step{Fault: FaultPartition, Groups: [][]string{{"etcd-1"}, {"etcd-2"}}, Source: "web"})
		require.NoError(t, err)
		r := &Runner{Injector: in, Steps: []Step{
			{Fault: FaultPartition, Isolate: "etcd-1", For: time.Second, Source: "step 1"},
		}}
		_, err = r.Run(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"0s cut etcd-1->etcd-2", "0s cut etcd-2->etcd-1"}, env.Calls(),
			"the scenario's cuts were already in force; its end mends nothing the click still needs")
		events := in.Events()
		require.Len(t, events, 2)
		assert.Equal(t, []int{1, 2}, []int{events[0].ID, events[1].ID})
		assert.True(t, events[0].Active, "the click's partition stays")
		assert.False(t, events[1].Active)
		assert.Equal(t, "web", events[0].Source)

		in.Undo(t.Context(), clickID)
		assert.Equal(t, []string{"1s mend etcd-1->etcd-2", "1s mend etcd-2->etcd-1"}, env.Calls()[2:])
		assert.False(t, in.Active(clickID))
	})
}

func TestInjectorApplyRejectsBadStepsAsEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		in := &Injector{Env: env}
		for _, s := range []Step{
			{Fault: FaultCrash, Target: "client-1"},       // clients are paused, not crashed
			{Fault: FaultPause, Target: "etcd-1"},         // members are crashed, not paused
			{Fault: FaultPartition, Isolate: "client-1"},  // clients are not partitioned
			{Fault: FaultPartition, Isolate: "etcd-9"},    // no such member
			{Fault: FaultDelay, Link: "client-1->etcd-1"}, // no such link
			{Fault: "meteor"},
		} {
			_, err := in.Apply(t.Context(), s)
			assert.Error(t, err, "%+v", s)
		}
		assert.Empty(t, env.Calls(), "nothing was applied")
		for _, ev := range in.Events() {
			assert.False(t, ev.Active)
			assert.NotEmpty(t, ev.Error)
		}
	})
}

func TestInjectorHealAllRestartsResumesAndHeals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		in := &Injector{Env: env}
		var seen []Event
		cancel := in.Subscribe(func(ev Event) { seen = append(seen, ev) })
		ctx := context.Background()
		_, err := in.Apply(ctx, Step{Fault: FaultCrash, Target: "etcd:leader"})
		require.NoError(t, err)
		_, err = in.Apply(ctx, Step{Fault: FaultPause, Target: "lockserver-1"})
		require.NoError(t, err)
		_, err = in.Apply(ctx, Step{Fault: FaultDelay, Link: "lockserver-1<->etcd-2", Latency: time.Millisecond})
		require.NoError(t, err)
		time.Sleep(time.Second) // synctest: the fake clock moves on
		require.NoError(t, in.HealAll(ctx, "web", "heal"))
		assert.Equal(t, []string{
			"0s crash etcd-1", "0s pause lockserver-1", "0s delay lockserver-1->etcd-2 1ms±0s", "0s delay etcd-2->lockserver-1 1ms±0s",
			"1s restart etcd-1", "1s resume lockserver-1", "1s heal",
		}, env.Calls())
		for _, ev := range in.Events() {
			assert.False(t, ev.Active, "%+v", ev)
		}
		assert.Equal(t, time.Second, in.Events()[0].End)
		n := len(seen)
		cancel()
		_, _ = in.Apply(ctx, Step{Fault: FaultHeal})
		assert.Len(t, seen, n, "no calls after cancel")
	})
}

func TestInjectorRecordKeepsAConditionOfTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		in := &Injector{Env: env}
		id := in.Record(Event{Fault: "unsafe", Target: "lockservers", Note: "check-then-set"})
		require.NoError(t, in.HealAll(t.Context(), "final", ""))
		ev := in.Events()[id-1]
		assert.True(t, ev.Active, "a heal does not end a condition of the run")
		assert.Equal(t, "unsafe", ev.Fault)
		assert.Equal(t, []string{"0s heal"}, env.Calls(), "nothing was applied for it")
	})
}
