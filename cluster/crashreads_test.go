package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestCrashUnderServingReads crashes and restarts a member while clients
// keep reading from it without going through the leader (serializable
// reads are served from the member's own store). A crash closes the
// member's store; a read that arrives in that moment must fail like a read
// on a dead process does, never take the whole process down with it.
func TestCrashUnderServingReads(t *testing.T) {
	c := startCluster(t, Config{})
	const victim = "etcd-2"
	cli := clientFor(t, c, victim)
	put(t, cli, "k", "v")
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var reads, failed atomic.Int64
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				rctx, rcancel := context.WithTimeout(ctx, time.Second)
				_, err := cli.Get(rctx, "k", clientv3.WithSerializable())
				rcancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				reads.Add(1)
			}
		})
	}
	for i := range 8 {
		before := reads.Load()
		require.Eventually(t, func() bool { return reads.Load() >= before+20 }, 30*time.Second, time.Millisecond,
			"round %d: reads resume on %s", i, victim)
		require.NoError(t, c.Crash(victim))
		require.NoError(t, c.Restart(t.Context(), victim))
	}
	cancel()
	wg.Wait()
	t.Logf("%d reads served, %d failed across 8 crashes", reads.Load(), failed.Load())
}
