package lockserver

import (
	"context"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoute(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/locks/acquire", routeAcquire},
		{"/locks/release", routeRelease},
		{"/locks/renew", routeRenew},
		{"/locks/order:1", routeGetLock},
		{"/locks/tenant/a/b", routeGetLock},
		{"/health", routeHealth},
		{"/metrics", routeMetrics},
		{"/", routeOther},
		{"/lockz", routeOther},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			assert.Equal(t, tt.want, route(tt.path))
		})
	}
}

// scrapeServer parses GET /metrics with the Prometheus text parser.
func scrapeServer(t *testing.T, c *http.Client, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := c.Get(url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// sample returns the metric of family name whose labels are exactly want.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f := fams[name]
	require.NotNil(t, f, "family %s", name)
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) == len(want) {
			match := true
			for k, v := range want {
				match = match && got[k] == v
			}
			if match {
				return m
			}
		}
	}
	t.Fatalf("no %s%v", name, want)
	return nil
}

func TestMetricsCountRequestsLatencyAndLocks(t *testing.T) {
	te := startEtcd(t)
	s, c := startServer(t, te, nil)
	hc := newTestHTTPClient(t)
	c.HTTP = hc

	fams := scrapeServer(t, hc, s.URL())
	assert.Equal(t, 0.0, sample(t, fams, "lockserver_locks_held", nil).GetGauge().GetValue())

	_, err := c.Acquire(t.Context(), "m:1", 5*time.Second, 0)
	require.NoError(t, err)
	_, err = c.Acquire(t.Context(), "m:1", 5*time.Second, 0)
	require.ErrorIs(t, err, ErrBusy)
	resp, err := hc.Get(s.URL() + "/nope")
	require.NoError(t, err)
	resp.Body.Close()

	fams = scrapeServer(t, hc, s.URL())
	assert.Equal(t, 1.0, sample(t, fams, "lockserver_http_requests_total", map[string]string{"route": "/locks/acquire", "code": "200"}).GetCounter().GetValue())
	assert.Equal(t, 1.0, sample(t, fams, "lockserver_http_requests_total", map[string]string{"route": "/locks/acquire", "code": "409"}).GetCounter().GetValue())
	assert.Equal(t, 1.0, sample(t, fams, "lockserver_http_requests_total", map[string]string{"route": "other", "code": "404"}).GetCounter().GetValue())
	assert.Equal(t, 2.0, sample(t, fams, "lockserver_http_requests_total", map[string]string{"route": "/metrics", "code": "200"}).GetCounter().GetValue())
	h := sample(t, fams, "lockserver_acquire_duration_seconds", map[string]string{"result": "ok"}).GetHistogram()
	assert.Equal(t, uint64(1), h.GetSampleCount())
	assert.Positive(t, h.GetSampleSum())
	assert.Equal(t, uint64(1), sample(t, fams, "lockserver_acquire_duration_seconds", map[string]string{"result": "busy"}).GetHistogram().GetSampleCount())
	assert.Equal(t, 1.0, sample(t, fams, "lockserver_locks_held", nil).GetGauge().GetValue())
	assert.Equal(t, 1.0, sample(t, fams, "lockserver_etcd_count_up", nil).GetGauge().GetValue())
	assert.Equal(t, 1.0, sample(t, fams, "lockserver_acquires_total", map[string]string{"result": "busy"}).GetCounter().GetValue())
}

func TestShutdownDrainsInFlightAcquire(t *testing.T) {
	te := startEtcd(t)
	s, c := startServer(t, te, nil)
	_, other := startServer(t, te, nil)
	held, err := other.Acquire(t.Context(), "d:1", 10*time.Second, 0)
	require.NoError(t, err)

	got := make(chan error, 1)
	go func() {
		_, err := c.Acquire(context.Background(), "d:1", 5*time.Second, 10*time.Second)
		got <- err
	}()
	require.Eventually(t, func() bool { return s.Stats().Waiters == 1 }, 30*time.Second, 5*time.Millisecond)
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	require.Eventually(t, func() bool {
		_, err := http.Get(s.URL() + "/health")
		return err != nil
	}, 30*time.Second, 5*time.Millisecond, "the listener closes at once")
	require.NoError(t, other.Release(t.Context(), "d:1", held.LockToken))
	require.NoError(t, <-got, "the queued acquire was granted while draining")
	require.NoError(t, <-shut)
}
