package cluster

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkPeerProxies measures what the peer proxies (TLS, one HTTP relay
// per member, per-message accounting) cost etcd: transactions per second
// through the leader with members dialling each other directly and through
// the proxies. Compare the two as a ratio within one run:
//
//	go test -run '^$' -bench PeerProxies -benchtime 5000x ./cluster/
func BenchmarkPeerProxies(b *testing.B) {
	for _, clients := range []int{1, 16} {
		for _, direct := range []bool{true, false} {
			name := "proxied"
			if direct {
				name = "direct"
			}
			b.Run(fmt.Sprintf("clients=%d/%s", clients, name), func(b *testing.B) {
				benchTxn(b, direct, clients)
			})
		}
	}
}

func benchTxn(b *testing.B, direct bool, clients int) {
	c, err := New(Config{UnsafeNoFsync: true, Dir: b.TempDir()})
	require.NoError(b, err)
	c.direct = direct
	require.NoError(b, c.allocatePorts()) // again: direct needs no proxy ports
	defer func() { require.NoError(b, c.Close()) }()
	require.NoError(b, c.Start(b.Context()))
	leader, err := c.WaitLeader(b.Context())
	require.NoError(b, err)
	u, err := c.ClientURL(leader)
	require.NoError(b, err)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{u}, DialTimeout: 2 * time.Second})
	require.NoError(b, err)
	defer cli.Close()
	_, err = cli.Put(b.Context(), "/warmup", "1")
	require.NoError(b, err)

	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range clients {
		wg.Go(func() {
			key := fmt.Sprintf("/bench/%d", w)
			for next.Add(1) <= int64(b.N) {
				ctx, cancel := context.WithTimeout(b.Context(), 10*time.Second)
				_, err := cli.Txn(ctx).
					If(clientv3.Compare(clientv3.Version(key), ">", -1)).
					Then(clientv3.OpPut(key, "v")).
					Commit()
				cancel()
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "txn/s")
}

// BenchmarkCrashWithStreams measures how long Crash takes on a member that
// serves a watch and a lease keep-alive stream, as the lock servers' members
// do (the fault injector waits for it), and how long Restart takes after:
//
//	go test -run '^$' -bench CrashWithStreams -benchtime 5x ./cluster/
func BenchmarkCrashWithStreams(b *testing.B) {
	c := startCluster(b, Config{})
	const victim = "etcd-2"
	cli := clientFor(b, c, victim)
	var crash, restart time.Duration
	for i := 0; b.Loop(); i++ {
		ctx, cancel := context.WithCancel(b.Context())
		wch := cli.Watch(ctx, "/w")
		lease, err := cli.Grant(ctx, 10)
		require.NoError(b, err)
		_, err = cli.KeepAlive(ctx, lease.ID)
		require.NoError(b, err)
		_, err = cli.Put(ctx, "/w", fmt.Sprint(i))
		require.NoError(b, err)
		<-wch // the watch stream is open

		start := time.Now()
		require.NoError(b, c.Crash(victim))
		crash += time.Since(start)
		start = time.Now()
		require.NoError(b, c.Restart(b.Context(), victim))
		restart += time.Since(start)
		cancel()
	}
	b.ReportMetric(float64(crash.Milliseconds())/float64(b.N), "crash-ms/op")
	b.ReportMetric(float64(restart.Milliseconds())/float64(b.N), "restart-ms/op")
}
