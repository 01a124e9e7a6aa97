package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name string
		ds   []time.Duration
		p    float64
		want float64
	}{
		{"empty", nil, 50, 0},
		{"one sample is every percentile", ms(7), 99, 7},
		{"median of odd count", ms(5, 1, 3), 50, 3},
		{"nearest rank rounds up", ms(1, 2, 3, 4), 50, 2},
		{"p95 of 20 is the 19th", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 95, 19},
		{"p100 is the max", ms(9, 1, 4), 100, 9},
		{"p0 is the min", ms(9, 1, 4), 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Percentile(tt.ds, tt.p)
			assert.InDelta(t, tt.want, got, 1e-9)
		})
	}
}

func TestPercentileDoesNotReorderInput(t *testing.T) {
	ds := []time.Duration{3, 1, 2}
	Percentile(ds, 50)
	assert.Equal(t, []time.Duration{3, 1, 2}, ds)
}

func TestHAProxyConfigIsTheDesigns(t *testing.T) {
	for _, mode := range []string{"http", "tcp"} {
		t.Run(mode, func(t *testing.T) {
			got := HAProxyConfig(mode, "127.0.0.1:9000", []string{"http://127.0.0.1:4001", "http://127.0.0.1:4002"})
			for _, want := range []string{
				"bind 127.0.0.1:9000",
				"balance roundrobin",
				"option httpchk GET /health",
				"server lockserver-1 127.0.0.1:4001 check inter 2s",
				"server lockserver-2 127.0.0.1:4002 check inter 2s",
				"mode " + mode,
			} {
				assert.Contains(t, got, want)
			}
			assert.NotContains(t, got, "http://127.0.0.1:4001", "haproxy wants host:port, not URLs")
			if mode == "tcp" {
				assert.NotContains(t, got, "http-keep-alive", "an http option haproxy would warn about in mode tcp")
			}
		})
	}
}

func TestBenchConfigDefaultsAndValidation(t *testing.T) {
	var full Config
	require.NoError(t, full.setDefaults())
	assert.Equal(t, 2*time.Second, full.Duration)
	assert.Equal(t, []int{1, 16, 64, 256}, full.Concurrency)
	assert.Equal(t, Suites, full.Only)
	assert.Equal(t, 10, full.FailoverTrials)
	assert.Equal(t, []int{0, 10_000, 100_000}, full.ScaleHeld)
	assert.Equal(t, []int{1_000, 10_000, 100_000}, full.CheckerOps)

	quick := Config{Quick: true}
	require.NoError(t, quick.setDefaults())
	assert.Less(t, quick.Duration, full.Duration)
	assert.Less(t, len(quick.Concurrency), len(full.Concurrency))

	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown suite", Config{Only: []string{"raw", "nginx"}}, `unknown suite "nginx"`},
		{"zero clients", Config{Concurrency: []int{0}}, "concurrency must be 1..4096"},
		{"negative duration", Config{Duration: -time.Second}, "negative duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.setDefaults()
			require.ErrorIs(t, err, ErrConfig)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestRunBenchRejectsBadConfigBeforeStarting(t *testing.T) {
	// Booting makes a data dir in TMPDIR: one that cannot be made would
	// fail a boot with another error than ErrConfig.
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	_, err := Run(t.Context(), Config{Only: []string{"bogus"}})
	require.ErrorIs(t, err, ErrConfig, "refused before booting")
}

func TestRunBenchCheckerSuite(t *testing.T) {
	var progress strings.Builder
	rep, err := Run(t.Context(), Config{Only: []string{Checker}, CheckerOps: []int{200}, Progress: &progress})
	require.NoError(t, err)
	require.Len(t, rep.Rows, 1)
	got := rep.Rows[0]
	assert.Equal(t, "checker", got.Name)
	assert.Equal(t, int64(200), got.Cycles)
	assert.Contains(t, got.Note, "lock linearizable")
	assert.Contains(t, progress.String(), "checker")
}

// BenchmarkCycle measures one lock cycle (acquire + release) on each path
// at 16 clients on distinct keys. allocs/op counts the whole process (the
// etcd members included): the difference between two paths is the share of
// the hop that one adds (direct - raw: HTTP client + lock server; balancer -
// direct: the balancer). Run: go test -run '^$' -bench Cycle -benchtime 3s ./bench/
func BenchmarkCycle(b *testing.B) {
	env, err := newBenchEnv(b.Context(), benchEnvConfig{})
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, env.Close()) })
	for _, name := range []string{Raw, Direct, Balancer, BalancerTCP, Mutex} {
		b.Run(name, func(b *testing.B) { benchCycles(b, env, name, 16) })
	}
}

func benchCycles(b *testing.B, env *benchEnv, name string, clients int) {
	ctx := context.Background()
	cyc := env.cycler(name)
	run := env.seq.Add(1)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1))
		w, err := cyc.newWorker(ctx, i)
		if err != nil {
			b.Error(err)
			return
		}
		defer w.close()
		key := fmt.Sprintf("gobench/%d/%d", run, i)
		for pb.Next() {
			h, err := w.acquire(ctx, key)
			if err != nil {
				b.Error(err)
				return
			}
			if err := w.release(ctx, key, h); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "cycles/s")
}
