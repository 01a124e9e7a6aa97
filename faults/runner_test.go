package faults

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeEnv records every call with the (synctest) time since start. Crashing the leader elects the
// next member, so role resolution at fire time is observable.
type fakeEnv struct {
	mu      sync.Mutex
	start   time.Time
	calls   []string
	leader  int              // 1-based etcd member
	fail    map[string]error // "crash etcd-1" -> error
	holdsIn time.Duration    // Wait holds after this long; <0: never
	holder  string           // who Wait returns
	members []string         // Members
}

func newFakeEnv() *fakeEnv {
	return &fakeEnv{
		start: time.Now(), leader: 1, fail: map[string]error{}, holdsIn: -1, holder: "client-2",
		members: []string{"etcd-1", "etcd-2", "etcd-3", "lockserver-1"},
	}
}

func (e *fakeEnv) record(format string, args ...any) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	call := fmt.Sprintf(format, args...)
	e.calls = append(e.calls, fmt.Sprintf("%v %s", time.Since(e.start), call))
	return e.fail[call]
}

func (e *fakeEnv) Calls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.calls...)
}

func (e *fakeEnv) Resolve(target string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch target {
	case "etcd:leader":
		return fmt.Sprintf("etcd-%d", e.leader), nil
	case "etcd:follower":
		return fmt.Sprintf("etcd-%d", e.leader%3+1), nil
	}
	return "", errors.New("no such role")
}

func (e *fakeEnv) Members() []string { return e.members }

func (e *fakeEnv) Crash(name string) error {
	if err := e.record("crash %s", name); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if name == fmt.Sprintf("etcd-%d", e.leader) {
		e.leader = e.leader%3 + 1
	}
	return nil
}

func (e *fakeEnv) Restart(_ context.Context, name string) error { return e.record("restart %s", name) }
func (e *fakeEnv) Pause(name string) error                      { return e.record("pause %s", name) }
func (e *fakeEnv) Resume(name string) error                     { return e.record("resume %s", name) }
func (e *fakeEnv) Cut(from, to string) error                    { return e.record("cut %s->%s", from, to) }
func (e *fakeEnv) Mend(from, to string) error                   { return e.record("mend %s->%s", from, to) }
func (e *fakeEnv) Heal() error                                  { return e.record("heal") }

func (e *fakeEnv) Delay(from, to string, latency, jitter time.Duration) error {
	return e.record("delay %s->%s %v±%v", from, to, latency, jitter)
}

func (e *fakeEnv) ClockSkew(client string, d time.Duration) error {
	return e.record("skew %s %v", client, d)
}

func (e *fakeEnv) Wait(ctx context.Context, c Condition) (string, error) {
	_ = e.record("wait %s %s", c.Holder, c.Phase)
	if e.holdsIn < 0 {
		<-ctx.Done()
		return "", ctx.Err()
	}
	select {
	case <-time.After(e.holdsIn):
		return e.holder, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func run(t *testing.T, env *fakeEnv, steps ...Step) ([]Event, *Runner) {
	t.Helper()
	r := &Runner{Steps: steps, Env: env}
	events, err := r.Run(t.Context())
	require.NoError(t, err)
	return events, r
}

func TestRunnerTimesAndUndoes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		events, _ := run(t, env,
			Step{At: 3 * time.Second, Fault: FaultDelay, Link: "lockserver-1<->etcd-2", Latency: 50 * time.Millisecond, Jitter: 5 * time.Millisecond, For: time.Second},
			Step{At: 3 * time.Second, Fault: FaultClockSkew, Target: "client-2", Skew: -time.Second, For: 500 * time.Millisecond},
			Step{At: time.Second, Fault: FaultCrash, Target: "etcd-3", RestartAfter: 500 * time.Millisecond, Note: "n", Source: "step 1"},
			Step{Fault: FaultPause, Target: "client-1", For: 4500 * time.Millisecond},
			Step{At: 2 * time.Second, Fault: FaultPartition, From: "lockserver-1", To: "etcd-1", For: time.Second},
		)
		want := []string{
			"0s pause client-1",
			"1s crash etcd-3",
			"1.5s restart etcd-3",
			"2s cut lockserver-1->etcd-1",
			"3s mend lockserver-1->etcd-1", // undo before a step due at the same time
			"3s delay lockserver-1->etcd-2 50ms±5ms",
			"3s delay etcd-2->lockserver-1 50ms±5ms",
			"3s skew client-2 -1s",
			"3.5s skew client-2 0s",
			"4s delay lockserver-1->etcd-2 0s±0s",
			"4s delay etcd-2->lockserver-1 0s±0s",
			"4.5s resume client-1",
		}
		assert.Equal(t, want, env.Calls())

		got := map[string][2]time.Duration{}
		for _, ev := range events {
			assert.Empty(t, ev.Error)
			assert.False(t, ev.Active, ev.Fault)
			got[ev.Fault] = [2]time.Duration{ev.Start, ev.End}
		}
		assert.Equal(t, map[string][2]time.Duration{
			FaultPause:     {0, 4500 * time.Millisecond},
			FaultCrash:     {time.Second, 1500 * time.Millisecond},
			FaultPartition: {2 * time.Second, 3 * time.Second},
			FaultDelay:     {3 * time.Second, 4 * time.Second},
			FaultClockSkew: {3 * time.Second, 3500 * time.Millisecond},
		}, got)
		assert.Equal(t, Event{ID: 2, Fault: FaultCrash, Target: "etcd-3", Resolved: "etcd-3", Start: time.Second, End: 1500 * time.Millisecond, Note: "n", Source: "step 1"}, events[1])
	})
}

func TestRunnerResolvesRolesWhenTheStepFires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		events, _ := run(t, env,
			Step{At: time.Second, Fault: FaultCrash, Target: "etcd:leader", RestartAfter: time.Second},
			Step{At: 3 * time.Second, Fault: FaultPartition, Isolate: "etcd:leader", For: time.Second},
		)
		require.Len(t, events, 2)
		assert.Equal(t, "etcd:leader", events[0].Target)
		assert.Equal(t, "etcd-1", events[0].Resolved)
		assert.Equal(t, "isolate etcd:leader", events[1].Target)
		assert.Equal(t, "[etcd-2] | [etcd-1 etcd-3 lockserver-1]", events[1].Resolved, "the new leader")
		assert.Contains(t, env.Calls(), "3s cut etcd-2->etcd-1")
		assert.Contains(t, env.Calls(), "4s mend lockserver-1->etcd-2")
	})
}

func TestRunnerWhenWaitsWhileUndosRunOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		env.holdsIn = 3 * time.Second
		events, _ := run(t, env,
			Step{Fault: FaultPause, Target: "client-3", For: 2 * time.Second},
			Step{At: time.Second, When: &Condition{Holder: "client-2", Phase: "after-read"}, Fault: FaultPause, Target: "client:holder", For: time.Second},
			Step{At: 2 * time.Second, Fault: FaultHeal}, // waits for the previous step
		)
		assert.Equal(t, []string{
			"0s pause client-3",
			"1s wait client-2 after-read",
			"2s resume client-3",
			"4s pause client-2",
			"4s resume client-2", // the heal step undoes it
			"4s heal",
		}, env.Calls())
		require.Len(t, events, 3)
		assert.Equal(t, "client:holder", events[1].Target)
		assert.Equal(t, "client-2", events[1].Resolved, "the holder the condition named")
		assert.Equal(t, 4*time.Second, events[1].Start)
	})
}

func TestRunnerConditionTimeoutIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv() // Wait never holds
		events, _ := run(t, env,
			Step{At: time.Second, When: &Condition{Holder: "client-1", Phase: "acquired", Timeout: 2 * time.Second}, Fault: FaultCrash, Target: "lockserver-1"},
			Step{At: 2 * time.Second, Fault: FaultCrash, Target: "lockserver-2"},
		)
		require.Len(t, events, 2)
		assert.Contains(t, events[0].Error, ErrConditionTimeout.Error())
		assert.Equal(t, 3*time.Second, events[0].Start)
		assert.False(t, events[0].Active)
		assert.Equal(t, []string{"1s wait client-1 acquired", "3s crash lockserver-2"}, env.Calls())
		assert.True(t, events[1].Active, "crash without restartAfter stays active")
	})
}

func TestRunnerFailuresBecomeEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		env.fail["crash etcd-2"] = errors.New("boom")
		env.fail["resume client-1"] = errors.New("stuck")
		env.fail["cut etcd-1->etcd-3"] = errors.New("no route")
		events, _ := run(t, env,
			Step{Fault: FaultCrash, Target: "etcd-2"},
			Step{Fault: FaultCrash, Target: "etcd:nobody"},
			Step{Fault: FaultPartition, Isolate: "etcd-9"},
			Step{Fault: "explode", Target: "etcd-1"},
			Step{Fault: FaultPause, Target: "client-1", For: time.Second},
			Step{Fault: FaultPartition, Groups: [][]string{{"etcd-1"}, {"etcd-3"}}, For: time.Second},
		)
		require.Len(t, events, 6)
		wantErr := []string{"boom", "unknown target", "unknown member", "unknown fault", "undo: stuck", "cut etcd-1->etcd-3: no route"}
		for i, ev := range events {
			assert.Contains(t, ev.Error, wantErr[i], "event %d", i+1)
			assert.False(t, ev.Active, "event %d", i+1)
		}
		assert.Contains(t, env.Calls(), "1s mend etcd-1->etcd-3", "a partially applied partition is still undone")
	})
}

func TestRunnerOverlappingPartitionsMendOnlyWhenUnneeded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		env.members = []string{"etcd-1", "etcd-2"}
		run(t, env,
			Step{Fault: FaultPartition, Isolate: "etcd-1", For: 2 * time.Second},
			Step{At: time.Second, Fault: FaultPartition, From: "etcd-1", To: "etcd-2", For: 3 * time.Second},
		)
		assert.Equal(t, []string{
			"0s cut etcd-1->etcd-2",
			"0s cut etcd-2->etcd-1",
			"2s mend etcd-2->etcd-1",
			"4s mend etcd-1->etcd-2",
		}, env.Calls())
	})
}

func TestRunnerHealStepEndsEveryFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		events, _ := run(t, env,
			Step{Fault: FaultPartition, Isolate: "etcd-1", For: 5 * time.Second},
			Step{Fault: FaultPause, Target: "client-1", For: 3 * time.Second},
			Step{At: time.Second, Fault: FaultHeal},
		)
		calls := env.Calls()
		assert.Contains(t, calls, "1s heal")
		assert.Contains(t, calls, "1s resume client-1", "heal undoes every fault, pauses included")
		assert.NotContains(t, fmt.Sprint(calls), "3s resume", "the pause's undo was cancelled")
		assert.NotContains(t, fmt.Sprint(calls), "mend", "the partition's undo was cancelled")
		require.Len(t, events, 3)
		assert.Equal(t, time.Second, events[0].End)
		assert.Equal(t, time.Second, events[1].End)
	})
}

func TestRunnerRestartAndResumeStepsEndActiveFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		events, _ := run(t, env,
			Step{Fault: FaultCrash, Target: "lockserver-1", RestartAfter: 10 * time.Second},
			Step{Fault: FaultPause, Target: "client-1"},
			Step{At: time.Second, Fault: FaultRestart, Target: "lockserver-1"},
			Step{At: 2 * time.Second, Fault: FaultResume, Target: "client-1"},
		)
		assert.Equal(t, []string{"0s crash lockserver-1", "0s pause client-1", "1s restart lockserver-1", "2s resume client-1"}, env.Calls(),
			"no second restart at 10s")
		require.Len(t, events, 4)
		assert.Equal(t, time.Second, events[0].End)
		assert.Equal(t, 2*time.Second, events[1].End)
	})
}

func TestRunnerHealAllUndoesEverythingActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		var seen, fired []Event
		in := &Injector{Env: env}
		in.Subscribe(func(ev Event) { seen = append(seen, ev) })
		r := &Runner{Injector: in, OnFire: func(ev Event) { fired = append(fired, ev) }, Steps: []Step{
			{Fault: FaultCrash, Target: "etcd-2"},
			{Fault: FaultPause, Target: "client-1"},
			{Fault: FaultPartition, Isolate: "etcd-3"},
			{Fault: FaultClockSkew, Target: "client-2", Skew: time.Second},
			{At: time.Second, Fault: FaultCrash, Target: "lockserver-1", RestartAfter: time.Hour},
		}}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := r.Run(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded, "Run ends with ctx")
		r.HealAll(t.Context())
		calls := env.Calls()
		assert.Equal(t, []string{"2s restart etcd-2", "2s resume client-1", "2s restart lockserver-1", "2s heal"}, calls[len(calls)-4:])
		events := r.Events()
		require.Len(t, events, 6)
		for _, ev := range events {
			assert.False(t, ev.Active, "%s %s", ev.Fault, ev.Target)
			assert.Empty(t, ev.Error)
		}
		assert.Equal(t, Event{ID: 6, Fault: FaultHeal, Start: 2 * time.Second, End: 2 * time.Second, Note: "heal every remaining fault", Source: "final"}, events[5])
		assert.Len(t, seen, 12, "subscribers see every start and end")
		assert.Len(t, fired, 5, "OnFire once per step")
	})
}

func TestRunnerStopsWaitingWhenCtxEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv() // Wait never holds
		r := &Runner{Env: env, WaitTimeout: time.Hour, Steps: []Step{
			{When: &Condition{Holder: "client-1", Phase: "acquired"}, Fault: FaultHeal},
		}}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		_, err := r.Run(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, time.Second, time.Since(start))
		// synctest.Test fails if the Wait goroutine were left behind.
	})
}
