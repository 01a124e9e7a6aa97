package loadbalancer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const ms = time.Millisecond

// input is one input of a scripted election: start, tick, stop, or an
// advert received, at an offset from time zero, with what must follow.
type input struct {
	at     time.Duration
	do     string // "start", "tick", "stop", "advert"
	advert Advert

	wantState     State
	wantAdvertise bool
	wantChange    bool // a transition
}

func start(at time.Duration, want State, advertise bool) input {
	return input{at: at, do: "start", wantState: want, wantAdvertise: advertise, wantChange: true}
}

func tick(at time.Duration, want State, advertise, change bool) input {
	return input{at: at, do: "tick", wantState: want, wantAdvertise: advertise, wantChange: change}
}

func hear(at time.Duration, from string, prio int, interval time.Duration, want State, change bool) input {
	return input{at: at, do: "advert", advert: Advert{From: from, Priority: prio, Interval: interval}, wantState: want, wantChange: change}
}

// Priority 100, interval 100ms: skew = 156/256 * 100ms = 60.9375ms, master
// down = 360.9375ms. Priority 110: skew 57.03125ms, master down 357.03125ms.
const (
	down100 = 360937500 * time.Nanosecond
	down110 = 357031250 * time.Nanosecond
)

func TestRouterElection(t *testing.T) {
	b1 := RouterConfig{Name: "balancer-1", Priority: 110, Interval: 100 * ms}
	b2 := RouterConfig{Name: "balancer-2", Priority: 100, Interval: 100 * ms}
	noPreempt := b1
	noPreempt.NoPreempt = true
	owner := RouterConfig{Name: "balancer-1", Priority: OwnerPriority, Interval: 100 * ms}
	tests := []struct {
		name   string
		cfg    RouterConfig
		inputs []input
	}{
		{"the owner (255) is master at once and advertises", owner, []input{
			start(0, StateMaster, true),
			tick(99*ms, StateMaster, false, false),
			tick(100*ms, StateMaster, true, false),
		}},
		{"a backup waits the master-down interval, then takes over and advertises", b2, []input{
			start(0, StateBackup, false),
			tick(down100-time.Nanosecond, StateBackup, false, false),
			tick(down100, StateMaster, true, true),
		}},
		{"adverts every interval keep a backup a backup", b2, []input{
			start(0, StateBackup, false),
			hear(300*ms, "balancer-1", 110, 100*ms, StateBackup, false),
			tick(300*ms+down100-time.Nanosecond, StateBackup, false, false),
			hear(600*ms, "balancer-1", 110, 100*ms, StateBackup, false),
			tick(900*ms, StateBackup, false, false),
			tick(600*ms+down100, StateMaster, true, true),
		}},
		{"a backup learns the master's interval: 3 x 1s + skew", b2, []input{
			start(0, StateBackup, false),
			hear(10*ms, "balancer-1", 110, time.Second, StateBackup, false),
			tick(10*ms+3*time.Second+609*ms, StateBackup, false, false),
			tick(10*ms+3*time.Second+610*ms, StateMaster, true, true), // skew = 156/256 s = 609.375ms
		}},
		{"preempt: a backup of higher priority ignores a lower master and takes over", b1, []input{
			start(0, StateBackup, false),
			hear(100*ms, "balancer-2", 100, 100*ms, StateBackup, false),
			hear(200*ms, "balancer-2", 100, 100*ms, StateBackup, false),
			tick(down110, StateMaster, true, true),
		}},
		{"nopreempt: a backup of higher priority accepts a lower master", noPreempt, []input{
			start(0, StateBackup, false),
			hear(100*ms, "balancer-2", 100, 100*ms, StateBackup, false),
			hear(200*ms, "balancer-2", 100, 100*ms, StateBackup, false),
			tick(down110+100*ms, StateBackup, false, false),
			tick(200*ms+down110, StateMaster, true, true),
		}},
		{"equal priority: a backup never preempts, preempt or not", RouterConfig{Name: "balancer-9", Priority: 100, Interval: 100 * ms}, []input{
			start(0, StateBackup, false),
			hear(100*ms, "balancer-10", 100, 100*ms, StateBackup, false),
			tick(100*ms+down100-time.Nanosecond, StateBackup, false, false),
		}},
		{"a master yields to a higher priority at once", b2, []input{
			start(0, StateBackup, false),
			tick(down100, StateMaster, true, true),
			hear(400*ms, "balancer-1", 110, 100*ms, StateBackup, true),
			tick(400*ms+down100-time.Nanosecond, StateBackup, false, false),
			tick(400*ms+down100, StateMaster, true, true), // and takes over again when it falls silent
		}},
		{"a master discards a lower priority's advert", b1, []input{
			start(0, StateBackup, false),
			tick(down110, StateMaster, true, true),
			hear(400*ms, "balancer-2", 100, 100*ms, StateMaster, false),
		}},
		{"equal priority: a master yields to a greater name", RouterConfig{Name: "balancer-9", Priority: 100, Interval: 100 * ms}, []input{
			start(0, StateBackup, false),
			tick(down100, StateMaster, true, true),
			hear(400*ms, "balancer-10", 100, 100*ms, StateBackup, true),
		}},
		{"equal priority: a master keeps its place against a smaller name", RouterConfig{Name: "balancer-2", Priority: 100, Interval: 100 * ms}, []input{
			start(0, StateBackup, false),
			tick(down100, StateMaster, true, true),
			hear(400*ms, "balancer-1", 100, 100*ms, StateMaster, false),
		}},
		{"a late master advertises once and schedules the next from now", owner, []input{
			start(0, StateMaster, true),
			tick(550*ms, StateMaster, true, false), // five intervals late (a pause)
			tick(649*ms, StateMaster, false, false),
			tick(650*ms, StateMaster, true, false),
		}},
		{"its own and malformed adverts are ignored", b2, []input{
			start(0, StateBackup, false),
			hear(100*ms, "balancer-2", 255, 100*ms, StateBackup, false),
			hear(150*ms, "balancer-1", 0, 100*ms, StateBackup, false),
			hear(200*ms, "balancer-1", 110, 0, StateBackup, false),
			tick(down100, StateMaster, true, true),
		}},
		{"a stopped router does nothing until started again", b2, []input{
			start(0, StateBackup, false),
			{at: 10 * ms, do: "stop", wantState: StateInit, wantChange: true},
			tick(time.Second, StateInit, false, false),
			hear(time.Second, "balancer-1", 110, 100*ms, StateInit, false),
			start(2*time.Second, StateBackup, false),
			tick(2*time.Second+down100, StateMaster, true, true),
		}},
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRouter(tt.cfg)
			require.NoError(t, err)
			for i, in := range tt.inputs {
				now := t0.Add(in.at)
				var out Output
				switch in.do {
				case "start":
					out = r.Start(now)
				case "tick":
					out = r.Tick(now)
				case "stop":
					out = r.Stop()
				case "advert":
					out = r.Step(now, in.advert)
				}
				assert.Equal(t, in.wantState, r.State(), "input %d (%s at %v): state", i, in.do, in.at)
				assert.Equal(t, in.wantAdvertise, out.Advertise, "input %d (%s at %v): advertise", i, in.do, in.at)
				assert.Equal(t, in.wantChange, out.Transition != nil, "input %d (%s at %v): transition %+v", i, in.do, in.at, out.Transition)
				if out.Transition != nil {
					assert.Equal(t, in.wantState, out.Transition.To)
					assert.NotEmpty(t, out.Transition.Reason)
				}
			}
		})
	}
}

func TestRouterTimers(t *testing.T) {
	tests := []struct {
		prio               int
		interval           time.Duration
		wantSkew, wantDown time.Duration
	}{
		{100, 100 * ms, 60937500, down100},
		{110, 100 * ms, 57031250, down110},
		{100, DefaultAdvertInterval, 121875 * time.Microsecond, 721875 * time.Microsecond},
		{254, time.Second, 7812500, 3*time.Second + 7812500},
		{1, time.Second, 996093750, 3*time.Second + 996093750},
	}
	for _, tt := range tests {
		r, err := NewRouter(RouterConfig{Name: "a", Priority: tt.prio, Interval: tt.interval})
		require.NoError(t, err)
		assert.Equal(t, tt.wantSkew, r.SkewTime(), "skew at priority %d, interval %v", tt.prio, tt.interval)
		assert.Equal(t, tt.wantDown, r.MasterDownInterval(), "master down at priority %d, interval %v", tt.prio, tt.interval)
	}
}

func TestRouterMasterAndDeadline(t *testing.T) {
	t0 := time.Unix(100, 0)
	r, err := NewRouter(RouterConfig{Name: "balancer-2", Interval: 100 * ms})
	require.NoError(t, err)
	assert.True(t, r.Deadline().IsZero())
	r.Start(t0)
	assert.Equal(t, t0.Add(down100), r.Deadline())
	assert.Empty(t, r.Master())
	r.Step(t0.Add(50*ms), Advert{From: "balancer-1", Priority: 110, Interval: 100 * ms})
	assert.Equal(t, "balancer-1", r.Master())
	assert.Equal(t, t0.Add(50*ms+down100), r.Deadline())
	out := r.Tick(r.Deadline())
	require.NotNil(t, out.Transition)
	assert.Contains(t, out.Transition.Reason, "no advert from balancer-1")
	assert.Equal(t, "balancer-2", r.Master())
	assert.Equal(t, t0.Add(50*ms+down100+100*ms), r.Deadline(), "the next advert")
	assert.Equal(t, Advert{From: "balancer-2", Priority: DefaultPriority, Interval: 100 * ms}, r.Advert())
}

func TestRouterConfig(t *testing.T) {
	r, err := NewRouter(RouterConfig{Name: "x"})
	require.NoError(t, err)
	assert.Equal(t, RouterConfig{Name: "x", Priority: DefaultPriority, Interval: DefaultAdvertInterval}, r.Config())
	for _, bad := range []RouterConfig{{}, {Name: "x", Priority: 256}, {Name: "x", Priority: -1}, {Name: "x", Interval: -time.Second}} {
		_, err := NewRouter(bad)
		assert.ErrorIs(t, err, ErrInvalidVRRP, "%+v", bad)
	}
}

func TestCompareNames(t *testing.T) {
	assert.Positive(t, CompareNames("balancer-10", "balancer-9"))
	assert.Positive(t, CompareNames("balancer-2", "balancer-1"))
	assert.Negative(t, CompareNames("balancer-1", "balancer-2"))
	assert.Zero(t, CompareNames("a", "a"))
}
