package main

import (
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestUpMemoryStaysFlat runs `locksim up` with a busy workload (6 clients,
// 5 ms hold and think: about 50 acquires a second) and one websocket viewer
// for LOCKSIM_MEMORY (e.g. 30m). Every LOCKSIM_MEMORY_EVERY (default 10 s) it
// forces a garbage collection and reads the live heap (the bytes it marked
// live: runtime/metrics' /gc/heap/live:bytes) and the process's RSS, and it
// prints a row a minute: the lowest and the highest live heap of that minute,
// the RSS and the goroutines at its end.
//
// The lowest sample of a minute is the floor a leak raises; the highest adds
// whatever work was in flight at that instant (a check, a compaction of the
// members' histories), which comes and goes. After the first 3 minutes every
// minute's floor must stay within ±20 % of their median. Opt-in: `make
// memory` (LOCKSIM_MEMORY=30m).
func TestUpMemoryStaysFlat(t *testing.T) {
	d, _ := time.ParseDuration(os.Getenv("LOCKSIM_MEMORY"))
	if d <= 0 {
		t.Skip("opt-in: LOCKSIM_MEMORY=30m (make memory)")
	}
	every := 10 * time.Second
	if s, _ := time.ParseDuration(os.Getenv("LOCKSIM_MEMORY_EVERY")); s > 0 {
		every = s
	}
	url, _, stderr := startCommand(t, "up", "--web", "127.0.0.1:0", "--clients", "6", "--hold", "5ms", "--think", "5ms", "--status-every", "0")
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"ws", nil)
	require.NoError(t, err)
	resp.Body.Close()
	defer conn.Close()
	var frames atomic.Int64
	go func() { // the viewer reads every frame the page would draw
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
			frames.Add(1)
		}
	}()
	type minute struct {
		index              int
		floorMB, peakMB    float64
		rssMB              float64
		goroutines, sample int
	}
	var minutes []minute
	start := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	t.Logf("%6s %12s %11s %7s %10s", "minute", "live floor", "live peak", "RSS", "goroutines")
	for time.Since(start) <= d {
		<-tick.C
		runtime.GC()
		live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(live)
		mb := float64(live[0].Value.Uint64()) / (1 << 20)
		i := int(time.Since(start) / time.Minute)
		if len(minutes) == 0 || minutes[len(minutes)-1].index != i {
			if len(minutes) > 0 {
				m := minutes[len(minutes)-1]
				t.Logf("%6d %11.1fM %10.1fM %6.0fM %10d", m.index, m.floorMB, m.peakMB, m.rssMB, m.goroutines)
			}
			minutes = append(minutes, minute{index: i, floorMB: mb})
		}
		m := &minutes[len(minutes)-1]
		m.floorMB, m.peakMB = min(m.floorMB, mb), max(m.peakMB, mb)
		m.rssMB, m.goroutines = rssMB(), runtime.NumGoroutine()
		m.sample++
	}
	if len(minutes) > 0 {
		m := minutes[len(minutes)-1]
		t.Logf("%6d %11.1fM %10.1fM %6.0fM %10d", m.index, m.floorMB, m.peakMB, m.rssMB, m.goroutines)
	}
	require.Empty(t, strings.TrimSpace(strings.ReplaceAll(stderr.String(), "\n", "")), "up wrote to stderr")
	var settled []float64
	for _, m := range minutes {
		if m.index >= 3 && m.sample >= 3 {
			settled = append(settled, m.floorMB)
		}
	}
	if len(settled) < 3 {
		t.Logf("too short to judge flatness (%d whole minutes after the first 3)", len(settled))
		return
	}
	slices.Sort(settled)
	median := settled[len(settled)/2]
	for _, v := range settled {
		assert.InDelta(t, median, v, 0.2*median, "live heap floor %.1f MB vs median %.1f MB", v, median)
	}
	t.Logf("floors after minute 3: %.1f-%.1f MB, median %.1f MB; viewer read %d frames",
		settled[0], settled[len(settled)-1], median, frames.Load())
}

// rssMB reads the process's resident set from /proc (0 where there is none).
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
