package main

import (
	"os"
	"runtime"
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
// for LOCKSIM_MEMORY (e.g. 30m), samples the live heap (after a forced
// garbage collection) and the process's RSS once a minute, prints them as a
// table, and asserts that after the first 3 minutes the live heap stays
// within ±20 % of its median. Opt-in: `make memory` (LOCKSIM_MEMORY=30m).
func TestUpMemoryStaysFlat(t *testing.T) {
	d, _ := time.ParseDuration(os.Getenv("LOCKSIM_MEMORY"))
	if d <= 0 {
		t.Skip("opt-in: LOCKSIM_MEMORY=30m (make memory)")
	}
	every := time.Minute
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
	type sample struct {
		at            time.Duration
		liveMB, rssMB float64
		goroutines    int
	}
	var samples []sample
	start := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	t.Logf("%8s %10s %8s %10s", "minute", "live heap", "RSS", "goroutines")
	for first := true; time.Since(start) <= d+every/2; first = false {
		if !first {
			<-tick.C
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s := sample{at: time.Since(start), liveMB: float64(ms.HeapAlloc) / (1 << 20), rssMB: rssMB(), goroutines: runtime.NumGoroutine()}
		samples = append(samples, s)
		t.Logf("%8.1f %9.1fM %7.0fM %10d", s.at.Minutes(), s.liveMB, s.rssMB, s.goroutines)
	}
	require.Empty(t, strings.TrimSpace(strings.ReplaceAll(stderr.String(), "\n", "")), "up wrote to stderr")
	var settled []float64
	for _, s := range samples {
		if s.at >= 3*time.Minute {
			settled = append(settled, s.liveMB)
		}
	}
	if len(settled) < 3 {
		t.Logf("too short to judge flatness (%d samples after 3 minutes)", len(settled))
		return
	}
	slices.Sort(settled)
	median := settled[len(settled)/2]
	for _, v := range settled {
		assert.InDelta(t, median, v, 0.2*median, "live heap %.1f MB vs median %.1f MB", v, median)
	}
	t.Logf("viewer read %d frames", frames.Load())
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
