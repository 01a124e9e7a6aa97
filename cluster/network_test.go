package cluster

import (
	"context"
	"io"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNetworkAdmit(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name     string
		cut      bool
		delay    linkDelay
		signal   bool
		wantLost bool
		wantDue  time.Duration // after t0
	}{
		{name: "open link delivers at once"},
		{name: "cut link drops", cut: true, wantLost: true},
		{name: "cut link lets a transport signal through", cut: true, signal: true},
		{name: "delay", delay: linkDelay{Latency: 50 * ms}, wantDue: 50 * ms},
		{name: "a delayed signal is delayed", delay: linkDelay{Latency: 50 * ms}, signal: true, wantDue: 50 * ms},
		{name: "cut wins over delay", cut: true, delay: linkDelay{Latency: 50 * ms}, wantLost: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nw := newNetwork(2, 1)
			m := newLinkMatrix(2)
			m[0][1] = tt.cut
			nw.setCuts(m)
			nw.setDelay(0, 1, tt.delay)
			f := &flow{nw: nw, from: 0, to: 1, signal: tt.signal}
			due, lost := nw.admit(f, t0)
			assert.Equal(t, tt.wantLost, lost)
			if !lost {
				assert.Equal(t, t0.Add(tt.wantDue), due)
			}
			// The reverse direction is never affected.
			back := &flow{nw: nw, from: 1, to: 0}
			due, lost = nw.admit(back, t0)
			assert.False(t, lost, "1->0 is not cut")
			assert.Equal(t, t0, due, "1->0 is not delayed")
		})
	}
}

func TestNetworkLostFlowStaysLostUntilMend(t *testing.T) {
	t.Parallel()
	nw := newNetwork(2, 1)
	f := &flow{nw: nw, from: 0, to: 1, aborted: make(chan struct{})}
	_, lost := nw.admit(f, time.Now())
	require.False(t, lost)
	nw.setCuts(linkMatrix{{false, true}, {false, false}})
	_, lost = nw.admit(f, time.Now())
	require.True(t, lost)
	nw.setCuts(linkMatrix{{false, true}, {true, false}}) // cutting more mends nothing
	select {
	case <-f.aborted:
		t.Fatal("aborted although 0->1 is still cut")
	default:
	}
	nw.setCuts(newLinkMatrix(2))
	_, lost = nw.admit(f, time.Now())
	assert.True(t, lost, "a flow with a hole never delivers again")
	select {
	case <-f.aborted:
	default:
		t.Fatal("mending 0->1 must abort the flow that lost bytes on it")
	}
	assert.Empty(t, nw.lost[0][1])
}

func TestNetworkJitterKeepsOrderAndBounds(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	nw := newNetwork(2, 7)
	nw.setDelay(0, 1, linkDelay{Latency: 20 * ms, Jitter: 50 * ms}) // capped at 20ms
	assert.Equal(t, []Link{
		{From: "a", To: "b", Latency: 20 * ms, Jitter: 20 * ms}, {From: "b", To: "a"},
	}, nw.links([]string{"a", "b"}))
	f := &flow{nw: nw, from: 0, to: 1}
	t0 := time.Unix(1000, 0)
	var prev time.Time
	spread := map[time.Duration]bool{}
	for i := range 200 {
		now := t0.Add(time.Duration(i) * ms)
		due, lost := nw.admit(f, now)
		require.False(t, lost)
		assert.False(t, due.Before(prev), "chunk %d overtakes an earlier one", i)
		assert.False(t, due.Before(now), "never earlier than sent")
		assert.False(t, due.After(now.Add(40*ms)), "at most latency+jitter")
		spread[due.Sub(now)] = true
		prev = due
	}
	assert.Greater(t, len(spread), 5, "jitter varies")
}

// goIn is a flow's spawn that counts the pump in wg.
func goIn(wg *sync.WaitGroup) func(func()) { return func(fn func()) { wg.Go(fn) } }

// pipeFlow starts a flow over a pipe on link 0->1 of nw; write to the
// returned writer, read from the flow.
func pipeFlow(t *testing.T, nw *network) (*flow, *io.PipeWriter, *sync.WaitGroup) {
	t.Helper()
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	f := newFlow(t.Context(), nw, goIn(&wg), 0, 1, false, pr, true)
	return f, pw, &wg
}

// readAt reads n bytes from f and returns them with the (fake) time elapsed
// since start.
func readAt(t *testing.T, f *flow, n int, start time.Time) (string, time.Duration) {
	t.Helper()
	buf := make([]byte, n)
	_, err := io.ReadFull(f, buf)
	require.NoError(t, err)
	return string(buf), time.Since(start)
}

func TestFlowDelaysEveryChunkByTheLatencyOnly(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const d = 100 * time.Millisecond
		nw := newNetwork(2, 1)
		nw.setDelay(0, 1, linkDelay{Latency: d})
		f, pw, wg := pipeFlow(t, nw)
		start := time.Now()
		go func() {
			_, _ = pw.Write([]byte("a"))
			time.Sleep(d / 2)
			_, _ = pw.Write([]byte("b"))
			time.Sleep(2 * d)
			_, _ = pw.Write([]byte("c"))
			_ = pw.Close()
		}()
		got, at := readAt(t, f, 1, start)
		assert.Equal(t, "a", got)
		assert.Equal(t, d, at)
		got, at = readAt(t, f, 1, start)
		assert.Equal(t, "b", got)
		assert.Equal(t, d/2+d, at, "sent during the first chunk's delay: not delayed twice")
		got, at = readAt(t, f, 1, start)
		assert.Equal(t, "c", got)
		assert.Equal(t, d/2+2*d+d, at)
		_, err := f.Read(make([]byte, 1))
		assert.ErrorIs(t, err, io.EOF)
		require.NoError(t, f.Close())
		wg.Wait()
	})
}

func TestFlowCutDropsTheRestThenAbortsOnMend(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		nw := newNetwork(2, 1)
		f, pw, wg := pipeFlow(t, nw)
		go func() { _, _ = pw.Write([]byte("before")) }()
		got, _ := readAt(t, f, 6, time.Now())
		assert.Equal(t, "before", got)

		nw.setCuts(linkMatrix{{false, true}, {false, false}})
		read := make(chan error, 1)
		go func() {
			_, err := f.Read(make([]byte, 1))
			read <- err
		}()
		wrote := make(chan error, 1)
		go func() {
			_, err := pw.Write([]byte("during"))
			wrote <- err
		}()
		synctest.Wait()
		require.Len(t, wrote, 1, "the sender is not held back by the cut")
		require.NoError(t, <-wrote)
		assert.Empty(t, read, "nothing is delivered while the link is cut")
		nw.setCuts(linkMatrix{{false, true}, {true, false}}) // the other direction: no effect
		synctest.Wait()
		assert.Empty(t, read)

		nw.setCuts(newLinkMatrix(2))
		assert.ErrorIs(t, <-read, errLost, "mended: the receiver learns the rest is lost")
		_, err := pw.Write([]byte("after"))
		assert.Error(t, err, "the aborted flow's source is closed")
		require.NoError(t, f.Close())
		wg.Wait()
	})
}

func TestFlowArriveHoldsALostHeaderUntilTheReceiverGivesUp(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		nw := newNetwork(2, 1)
		nw.setCuts(linkMatrix{{false, true}, {false, false}})
		var wg sync.WaitGroup
		ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
		defer cancel()
		f := newFlow(ctx, nw, goIn(&wg), 0, 1, false, nil, true)
		start := time.Now()
		assert.ErrorIs(t, f.arrive(), errLost)
		assert.Equal(t, time.Hour, time.Since(start), "held until the receiver gave up")

		sig := newFlow(t.Context(), nw, goIn(&wg), 0, 1, true, nil, true)
		assert.NoError(t, sig.arrive(), "a transport signal passes a cut")
		require.NoError(t, f.Close())
		require.NoError(t, sig.Close())
		wg.Wait()
	})
}

func TestFlowEndsWithItsExchange(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		nw := newNetwork(2, 1)
		nw.setDelay(0, 1, linkDelay{Latency: time.Hour})
		pr, pw := io.Pipe()
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		f := newFlow(ctx, nw, goIn(&wg), 0, 1, false, pr, true)
		go func() { _, _ = pw.Write([]byte("held for an hour")) }()
		start := time.Now()
		time.AfterFunc(time.Minute, cancel)
		_, err := f.Read(make([]byte, 1))
		assert.ErrorIs(t, err, errFlowClosed)
		assert.Equal(t, time.Minute, time.Since(start), "the reader is released when the exchange ends")
		require.NoError(t, f.Close())
		wg.Wait()
	})
}
