package lockserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWaiterKeysAreNeverReused(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		k := waiterKey("r", 0x1234) // the pool hands the same lease out again and again
		require.False(t, seen[k], "waiter key %s reused", k)
		seen[k] = true
	}
}

// TestContendedQueueKeepsMoving: many clients on one key through one lock
// server (all watches on one gRPC stream, so creating a watch is slow),
// round after round, each round cancelled mid-flight like a benchmark point.
// A queue that deadlocks (a waiter watching a key that a newer waiter
// re-created under a reused lease) stops granting and fails the deadline.
func TestContendedQueueKeepsMoving(t *testing.T) {
	te := startEtcd(t)
	s, _ := startServer(t, te, nil)
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	for round := range 8 {
		key := fmt.Sprintf("hot-%d", round)
		ctx, cancel := context.WithCancel(t.Context())
		var cycles atomic.Int64
		var wg sync.WaitGroup
		for i := range 128 {
			c := &Client{BaseURL: s.URL(), ClientID: fmt.Sprint("c", i), HTTP: hc}
			wg.Go(func() {
				for ctx.Err() == nil {
					g, err := c.Acquire(ctx, key, 30*time.Second, time.Minute)
					if err != nil {
						continue
					}
					rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
					if c.Release(rctx, key, g.LockToken) == nil {
						cycles.Add(1)
					}
					rcancel()
				}
			})
		}
		ok := assert.Eventually(t, func() bool { return cycles.Load() >= 300 }, 30*time.Second, 10*time.Millisecond,
			"round %d: the queue stopped", round)
		cancel()
		wg.Wait()
		if !ok {
			info, err := (&Client{BaseURL: s.URL()}).Get(t.Context(), key)
			t.Logf("round %d: %d cycles; lock %+v (err %v)", round, cycles.Load(), info, err)
			return
		}
	}
}

// TestMaybeGranted: a wait whose waiter may have been handed a lock that
// ended unseen never answers "no effect" (busy, unavailable) and never
// starts the acquire again; any other answer stands.
func TestMaybeGranted(t *testing.T) {
	tests := []struct {
		name        string
		maybeHanded bool
		err         error
		want        error // nil: the answer is err itself
	}{
		{"granted", true, nil, nil},
		{"unavailable, never handed", false, ErrUnavailable, ErrUnavailable},
		{"busy, never handed", false, ErrBusy, ErrBusy},
		{"unavailable, maybe handed", true, fmt.Errorf("%w: no lease to queue with", ErrUnavailable), ErrOutcomeUnknown},
		{"busy, maybe handed", true, ErrBusy, ErrOutcomeUnknown},
		{"retry with a new lease, maybe handed", true, errRetryLease, ErrOutcomeUnknown},
		{"unknown stays unknown", true, ErrOutcomeUnknown, ErrOutcomeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := maybeGranted(&waiter{maybeHanded: tt.maybeHanded}, tt.err)
			if tt.want == nil {
				assert.NoError(t, got)
				return
			}
			require.ErrorIs(t, got, tt.want)
			if tt.maybeHanded && tt.err != nil && !errors.Is(tt.err, ErrOutcomeUnknown) {
				assert.NotErrorIs(t, got, ErrUnavailable, "a definite failure no more")
				assert.NotErrorIs(t, got, ErrBusy)
				assert.NotErrorIs(t, got, errRetryLease, "the acquire must not start again")
			}
		})
	}
}
