package history

import (
	"bytes"
	"errors"
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

// With Keep and Sink, memory keeps only the most recent operations (never a
// pending one) while the Sink receives every operation once: read back and
// sorted by call, it is the whole history, the never-ended one as unknown.
func TestRecorderKeepsRecentAndStreamsEverything(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: start, step: time.Millisecond}
	var sink bytes.Buffer
	rec := NewRecorder(start)
	rec.Now, rec.Keep, rec.Sink = clock.Now, 10, &sink

	stuck := rec.Begin("client-9", OpAcquire, r1, Input{}) // pending for the whole run
	for i := range 100 {
		p := rec.Begin(fmt.Sprint("client-", i%3), OpRead, r1, Input{FencingToken: int64(i)})
		p.End(OK, Output{Value: ptr(int64(i))})
	}
	assert.Equal(t, 101, rec.Len(), "every operation begun counts")
	kept, first := rec.OpsFrom(0)
	assert.Equal(t, 0, first, "the pending first operation is never dropped")
	assert.Equal(t, "client-9", kept[0].Client)

	stuck.End(Unknown, Output{Error: "lock server crashed"})
	p := rec.Begin("client-1", OpRead, r1, Input{FencingToken: 200})
	p.End(OK, Output{Value: ptr(int64(200))})
	kept, first = rec.OpsFrom(0)
	assert.LessOrEqual(t, len(kept), 11, "about Keep operations kept")
	assert.Equal(t, 102-len(kept), first)
	assert.Equal(t, int64(200), kept[len(kept)-1].Input.FencingToken, "the most recent are kept")
	got, ok := rec.Op(101)
	require.True(t, ok)
	assert.Equal(t, kept[len(kept)-1], got)
	_, ok = rec.Op(5)
	assert.False(t, ok, "a dropped operation is gone from memory")
	later, from := rec.OpsFrom(101)
	assert.Equal(t, 101, from)
	assert.Len(t, later, 1)

	last := rec.Begin("client-2", OpWrite, r1, Input{}) // never ends
	_ = last
	require.NoError(t, rec.Flush())
	all, err := ReadJSONL(&sink)
	require.NoError(t, err)
	SortByCall(all)
	require.Len(t, all, 103, "nothing is lost")
	assert.Equal(t, "client-9", all[0].Client)
	assert.Equal(t, Outcome(Unknown), all[0].Outcome)
	assert.Equal(t, "client-2", all[102].Client)
	assert.Equal(t, Outcome(Unknown), all[102].Outcome, "a pending operation is flushed as unknown")
	for i := 1; i < len(all); i++ {
		assert.Less(t, all[i-1].Call, all[i].Call)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestRecorderReportsASinkThatFails(t *testing.T) {
	rec := NewRecorder(time.Now())
	rec.Sink = failingWriter{}
	for range 1000 { // more than bufio's buffer
		rec.Begin("client-1", OpRead, r1, Input{}).End(OK, Output{Value: ptr(int64(1))})
	}
	assert.ErrorContains(t, rec.Flush(), "disk full")
}
