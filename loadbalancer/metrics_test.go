package loadbalancer

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMetricsByBackendAndStatus(t *testing.T) {
	live, dead := newCounting(t), deadURL(t)
	b, err := New(Config{Backends: []string{live.URL(), dead}})
	require.NoError(t, err)
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)

	for range 2 { // round robin: one of them first meets the refused backend and is retried
		resp, err := http.Post(srv.URL+"/locks/acquire", "application/json", bytes.NewReader([]byte(`{}`)))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	for _, be := range b.backends { // no backend up: 503 from nobody
		be.up.Store(false)
	}
	resp, err := http.Get(srv.URL + "/locks/x")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

	resp, err = http.Get(srv.URL + MetricsPath)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, int64(2), live.hits.Load(), "the balancer answered /metrics itself")

	got := map[string]float64{}
	for name, f := range fams {
		if !strings.HasPrefix(name, "loadbalancer_") {
			continue
		}
		for _, m := range f.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				v := l.GetValue()
				switch v {
				case live.URL():
					v = "live"
				case dead:
					v = "dead"
				}
				key += "," + l.GetName() + "=" + v
			}
			got[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"loadbalancer_requests_total,backend=live,code=200": 2,
		"loadbalancer_requests_total,backend=none,code=503": 1,
		"loadbalancer_backend_forwarded_total,backend=live": 2,
		"loadbalancer_backend_forwarded_total,backend=dead": 1,
		"loadbalancer_backend_failures_total,backend=live":  0,
		"loadbalancer_backend_failures_total,backend=dead":  1,
		"loadbalancer_backend_up,backend=live":              0,
		"loadbalancer_backend_up,backend=dead":              0,
		"loadbalancer_backend_in_flight,backend=live":       0,
		"loadbalancer_backend_in_flight,backend=dead":       0,
	}
	assert.Equal(t, want, got)
}
