package lockserver

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Route label values of lockserver_http_requests_total. Lock ids are folded
// into one route so that the label set stays small.
const (
	routeAcquire = "/locks/acquire"
	routeRelease = "/locks/release"
	routeRenew   = "/locks/renew"
	routeGetLock = "/locks/{resourceId}"
	routeHealth  = "/health"
	routeMetrics = "/metrics"
	routeOther   = "other"
)

// acquireBuckets spans a try-once acquire (milliseconds) to a blocking one
// that waited up to the 300 s maximum timeout.
var acquireBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// clusterCountTimeout bounds the etcd count a scrape makes for
// lockserver_locks_held and lockserver_queued_waiters.
const clusterCountTimeout = time.Second

// metrics is the Prometheus instrumentation of one Server, on a registry of
// its own (many servers live in one sandbox process).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec   // route, code
	acquire  *prometheus.HistogramVec // result
	handler  http.Handler

	// The children of requests and acquire, looked up once: a label
	// lookup hashes and formats its values on every request.
	mu       sync.RWMutex
	counters map[requestKey]prometheus.Counter
	results  map[string]prometheus.Observer
}

type requestKey struct {
	route  string
	status int
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockserver_http_requests_total",
			Help: "HTTP requests answered, by route and status code.",
		}, []string{"route", "code"}),
		acquire: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lockserver_acquire_duration_seconds",
			Help:    "Time to answer an acquire (including a blocking wait), by result: ok, busy, unknown, unavailable, error.",
			Buckets: acquireBuckets,
		}, []string{"result"}),
	}
	m.counters = map[requestKey]prometheus.Counter{}
	m.results = map[string]prometheus.Observer{}
	for _, r := range []string{"ok", "busy", "unknown", "unavailable", "error"} {
		m.results[r] = m.acquire.WithLabelValues(r)
	}
	m.reg.MustRegister(m.requests, m.acquire, statsCollector{s})
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg, // promhttp_metric_handler_errors_total
	})
	return m
}

// Metrics returns the server's Prometheus registry, which GET /metrics
// serves. A standalone process may register more collectors on it (Go
// runtime, process); it is never the global registry.
func (s *Server) Metrics() *prometheus.Registry { return s.metrics.reg }

// route maps a request path to its route label.
func route(path string) string {
	switch path {
	case routeAcquire, routeRelease, routeRenew, routeHealth, routeMetrics:
		return path
	}
	if strings.HasPrefix(path, "/locks/") {
		return routeGetLock
	}
	return routeOther
}

// countRequest records one answered request.
func (s *Server) countRequest(r *http.Request, status int) {
	m := s.metrics
	k := requestKey{route(r.URL.Path), status}
	m.mu.RLock()
	c := m.counters[k]
	m.mu.RUnlock()
	if c == nil {
		c = m.requests.WithLabelValues(k.route, strconv.Itoa(status))
		m.mu.Lock()
		m.counters[k] = c
		m.mu.Unlock()
	}
	c.Inc()
}

// observeAcquire records the latency of one acquire answered with err.
func (s *Server) observeAcquire(start time.Time, err error) {
	s.metrics.results[acquireResult(err)].Observe(time.Since(start).Seconds())
}

func acquireResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrBusy):
		return "busy"
	case errors.Is(err, ErrOutcomeUnknown):
		return "unknown"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	default:
		return "error"
	}
}

// handleMetrics serves the registry in the Prometheus text format.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if s.checkpoint(r.Context()) != nil {
		return // paused then closed, or the scraper left
	}
	s.countRequest(r, http.StatusOK) // counted first so that a scrape sees itself
	s.metrics.handler.ServeHTTP(w, r)
}

// statsCollector exports Stats, read at scrape time, and counts the locks
// and waiters in etcd.
type statsCollector struct{ s *Server }

var (
	descAcquires  = prometheus.NewDesc("lockserver_acquires_total", "Acquires answered, by result.", []string{"result"}, nil)
	descReleases  = prometheus.NewDesc("lockserver_releases_total", "Releases answered, by result (ok, not_holder).", []string{"result"}, nil)
	descRenews    = prometheus.NewDesc("lockserver_renews_total", "Renews answered, by result (ok, not_holder).", []string{"result"}, nil)
	descRejected  = prometheus.NewDesc("lockserver_rejected_total", "Requests refused by auth (401/403) or the rate limit (429).", nil, nil)
	descGrantTxns = prometheus.NewDesc("lockserver_grant_txns_total", "Grant attempts (acquire txns) sent to etcd.", nil, nil)
	descHandOvers = prometheus.NewDesc("lockserver_handovers_total", "Releases that handed the lock over to the oldest waiter in their own txn.", nil, nil)
	descEtcdErrs  = prometheus.NewDesc("lockserver_etcd_errors_total", "etcd calls made for requests that failed.", nil, nil)
	descWaiters   = prometheus.NewDesc("lockserver_waiters", "Blocked acquires this server is holding in the queue now.", nil, nil)
	descHeld      = prometheus.NewDesc("lockserver_locks_held", "Locks held in etcd now, across every lock server (keys under /locks/, counted at scrape time; absent when etcd did not answer).", nil, nil)
	descQueued    = prometheus.NewDesc("lockserver_queued_waiters", "Blocked acquires queued in etcd now, across every lock server (counted at scrape time; absent when etcd did not answer).", nil, nil)
	descCountUp   = prometheus.NewDesc("lockserver_etcd_count_up", "1 if this scrape could count locks in etcd, else 0.", nil, nil)
)

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAcquires, descReleases, descRenews, descRejected, descGrantTxns, descHandOvers,
		descEtcdErrs, descWaiters, descHeld, descQueued, descCountUp} {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descAcquires, st.AcquireOK, "ok")
	counter(descAcquires, st.AcquireBusy, "busy")
	counter(descAcquires, st.AcquireUnknown, "unknown")
	counter(descAcquires, st.AcquireUnavailable, "unavailable")
	counter(descReleases, st.Releases, "ok")
	counter(descReleases, st.ReleaseNotHolder, "not_holder")
	counter(descRenews, st.Renews, "ok")
	counter(descRenews, st.RenewNotHolder, "not_holder")
	counter(descRejected, st.Rejected)
	counter(descGrantTxns, st.GrantTxns)
	counter(descHandOvers, st.HandOvers)
	counter(descEtcdErrs, st.EtcdErrors)
	ch <- prometheus.MustNewConstMetric(descWaiters, prometheus.GaugeValue, float64(st.Waiters))

	held, queued, err := c.s.countInEtcd()
	up := 0.0
	if err == nil {
		up = 1
		ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(held))
		ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(queued))
	}
	ch <- prometheus.MustNewConstMetric(descCountUp, prometheus.GaugeValue, up)
}

// countInEtcd counts the lock keys and waiter keys in one serializable
// (local, cheap) read: a scrape must not load the Raft leader.
func (s *Server) countInEtcd() (held, queued int64, err error) {
	kv := s.kv()
	if kv == nil {
		return 0, 0, ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(s.ctx, min(clusterCountTimeout, s.cfg.EtcdTimeout))
	defer cancel()
	resp, err := kv.Txn(ctx).Then(
		clientv3.OpGet(LockPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable()),
		clientv3.OpGet(WaiterPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable()),
	).Commit()
	if err != nil {
		s.log.Debug("metrics: counting locks in etcd failed", "err", err)
		return 0, 0, err
	}
	return resp.Responses[0].GetResponseRange().GetCount(), resp.Responses[1].GetResponseRange().GetCount(), nil
}
