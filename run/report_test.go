package run

import (
	"runtime"
	"testing"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/stretchr/testify/assert"
)

// A long run's runtime sample carries the lowest and highest live heap
// sampled since the previous one: memory that was live only in between
// shows in the peak, not in the floor.
func TestLiveHeapFloorAndPeak(t *testing.T) {
	lh := &liveHeap{}
	lh.sample()
	held := make([]byte, 64<<20)
	for i := range held {
		held[i] = 1 // touched, so it is real memory
	}
	lh.sample()
	runtime.KeepAlive(held) // and no longer after
	s := sampleRuntime(time.Minute, lh)
	assert.GreaterOrEqual(t, s.LiveHeapPeakMB-s.LiveHeapMB, 48.0, "64 MB were live at one sample: floor %.1f MB, peak %.1f MB", s.LiveHeapMB, s.LiveHeapPeakMB)
	assert.Equal(t, liveHeap{}, *lh, "the next sample starts afresh")

	short := sampleRuntime(time.Second, nil)
	assert.Zero(t, short.LiveHeapMB, "short runs do not force collections")
	assert.Positive(t, short.HeapMB)
}

// TestUnexplainedFailure: grants etcd made to acquires answered "no effect"
// fail a run, naming each; a deliberately unsafe lock server (a negative
// control) breaks promises on purpose and is not failed for it.
func TestUnexplainedFailure(t *testing.T) {
	g := history.Grant{Owner: "client-1", Resource: "order:1", Revision: 154, Seen: int64(3100 * time.Millisecond)}
	assert.Empty(t, unexplainedFailure(nil, ""))
	assert.Empty(t, unexplainedFailure([]history.Grant{g}, "check-then-set"))
	got := unexplainedFailure([]history.Grant{g}, "")
	assert.Contains(t, got, "etcd granted 1 lock(s) to acquires that were answered with a definite failure")
	assert.Contains(t, got, "client-1 on order:1 #154 seen at 3.10s")
}
