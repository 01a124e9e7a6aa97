package history

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock advances by step on every reading.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

func TestRecorder(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: start, step: time.Millisecond}
	rec := NewRecorder(start)
	rec.Now = clock.Now

	ttl := 2.0
	a := rec.Begin("client-1", OpAcquire, r1, Input{TTL: &ttl})      // call 1 ms
	r := rec.Begin("client-2", OpRelease, r1, Input{LockToken: "t"}) // call 2 ms
	a.End(OK, Output{LockToken: "tok", FencingToken: 7})             // return 3 ms
	a.End(Fail, Output{})                                            // ignored
	r.End(Unknown, Output{Error: "timeout"})
	p := rec.Begin("client-3", OpRenew, r1, Input{}) // call 4 ms, never ends
	_ = p
	assert.Equal(t, int64(5*time.Millisecond), rec.Since())

	got := rec.Ops()
	want := []Op{
		{Client: "client-1", Op: OpAcquire, Resource: r1, Input: Input{TTL: &ttl}, Output: Output{LockToken: "tok", FencingToken: 7},
			Call: ms(1), Return: ptr(ms(3)), Outcome: OK},
		{Client: "client-2", Op: OpRelease, Resource: r1, Input: Input{LockToken: "t"}, Output: Output{Error: "timeout"},
			Call: ms(2), Outcome: Unknown},
		{Client: "client-3", Op: OpRenew, Resource: r1, Call: ms(4), Outcome: Unknown},
	}
	assert.Equal(t, want, got)
	for _, op := range got {
		assert.NoError(t, op.Validate())
	}
	*got[0].Return = 0
	assert.Equal(t, ms(3), *rec.Ops()[0].Return, "Ops returns a snapshot")
}

func TestRecorderMonotonicClockAndConcurrency(t *testing.T) {
	rec := NewRecorder(time.Now())
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			for i := range 50 {
				p := rec.Begin(fmt.Sprint("client-", c), OpRead, r1, Input{})
				if i%2 == 0 {
					p.End(OK, Output{Value: ptr(int64(i))})
				} else {
					p.End(Fail, Output{Rejected: true})
				}
			}
		})
	}
	wg.Wait()
	ops := rec.Ops()
	require.Len(t, ops, 400)
	require.Equal(t, 400, rec.Len())
	for i, op := range ops {
		require.NoError(t, op.Validate())
		if i > 0 {
			require.GreaterOrEqual(t, op.Call, ops[i-1].Call, "ops are in call order")
		}
	}
}
