package loadbalancer

import (
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsPath is the path the balancer answers itself, with its own
// metrics in the Prometheus text format, instead of proxying it: scrape
// each lock server's /metrics directly.
const MetricsPath = "/metrics"

// noBackend is the backend label of answers no backend gave (503 when none
// is up or every one refused the connection).
const noBackend = "none"

// statusCounts counts answers by HTTP status code without locks or
// allocations on the request path. Codes outside 100-599 count as 0.
type statusCounts [600]atomic.Uint64

func (c *statusCounts) add(code int) {
	if code < 100 || code >= len(c) {
		code = 0
	}
	c[code].Add(1)
}

// metrics is the balancer's Prometheus registry (never the global one:
// many balancers may live in one process).
type metrics struct {
	reg      *prometheus.Registry
	none     statusCounts  // answers without a backend
	unserved atomic.Uint64 // tcp mode: connections no backend took
	handler  http.Handler
}

func newMetrics(b *Balancer) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collector{b})
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
	})
	return m
}

// Metrics returns the balancer's Prometheus registry, which GET
// [MetricsPath] serves. A standalone process may register more collectors
// on it (Go runtime, process).
func (b *Balancer) Metrics() *prometheus.Registry { return b.metrics.reg }

// countAnswer records the status of one answer; be is nil when no backend
// gave it.
func (b *Balancer) countAnswer(be *backend, code int) {
	if be == nil {
		b.metrics.none.add(code)
		return
	}
	be.codes.add(code)
}

func (b *Balancer) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = []string{"GET, HEAD"}
		writeJSON(w, http.StatusMethodNotAllowed,
			[]byte(`{"success":false,"error":"method not allowed (allowed: GET, HEAD)","code":"method_not_allowed"}`), nil)
		return
	}
	b.metrics.handler.ServeHTTP(w, r)
}

var (
	descUp = prometheus.NewDesc("loadbalancer_backend_up",
		"1 if the backend takes new requests (health checks with rise/fall), else 0.", []string{"backend"}, nil)
	descInFlight = prometheus.NewDesc("loadbalancer_backend_in_flight",
		"Requests (tcp mode: open connections) outstanding on the backend now.", []string{"backend"}, nil)
	descRequests = prometheus.NewDesc("loadbalancer_requests_total",
		`Answers sent to clients, by backend and status code (backend "none": no backend was up or every one refused the connection).`,
		[]string{"backend", "code"}, nil)
	descForwarded = prometheus.NewDesc("loadbalancer_backend_forwarded_total",
		"Requests (tcp mode: connections) forwarded to the backend, including attempts whose connection was refused.", []string{"backend"}, nil)
	descFailures = prometheus.NewDesc("loadbalancer_backend_failures_total",
		"Forwarded requests (tcp mode: connections) that ended in a transport error (refused, or lost before the full answer).", []string{"backend"}, nil)
	descUnserved = prometheus.NewDesc("loadbalancer_unserved_connections_total",
		"tcp mode: client connections reset because no backend was up or every one refused the connection.", nil, nil)
)

// collector reads the backends' atomics at scrape time.
type collector struct{ b *Balancer }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descInFlight, descRequests, descForwarded, descFailures, descUnserved} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	codes := func(backend string, sc *statusCounts) {
		for code := range sc {
			if n := sc[code].Load(); n > 0 {
				ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), backend, strconv.Itoa(code))
			}
		}
	}
	for _, be := range c.b.backends {
		up := 0.0
		if be.up.Load() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, be.url)
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(be.inFlight.Load()), be.url)
		ch <- prometheus.MustNewConstMetric(descForwarded, prometheus.CounterValue, float64(be.requests.Load()), be.url)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(be.failures.Load()), be.url)
		codes(be.url, &be.codes)
	}
	codes(noBackend, &c.b.metrics.none)
	if c.b.cfg.Mode == ModeTCP {
		ch <- prometheus.MustNewConstMetric(descUnserved, prometheus.CounterValue, float64(c.b.metrics.unserved.Load()))
	}
}

// serveAdmin answers AdminListen: MetricsPath and CheckPath, 404 otherwise.
func (b *Balancer) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if b.pause.check(r.Context()) != nil {
		panic(http.ErrAbortHandler) // frozen until the client left: no answer at all
	}
	switch r.URL.Path {
	case MetricsPath:
		b.serveMetrics(w, r)
	case CheckPath:
		b.serveCheck(w, r)
	default:
		writeJSON(w, http.StatusNotFound, []byte(`{"success":false,"error":"not found: this address serves `+MetricsPath+` and `+CheckPath+`","code":"not_found"}`), nil)
	}
}
