// Package loadbalancer is locksim's in-process HTTP load balancer: the
// HAProxy or Nginx of the design, in front of the stateless lock servers.
//
// It has a pure core and a thin I/O shell:
//   - picker.go: [RoundRobin] and [LeastConnections] choose among the
//     eligible backends (ties in least-connections are broken round-robin).
//   - health.go: an active check of every backend's HealthPath each
//     HealthInterval, with HAProxy's rise/fall counting. Backends start up,
//     so traffic flows at once; Fall failed checks in a row take one down,
//     Rise good checks in a row bring it back. A proxied request whose
//     connection is refused also counts as one failed check.
//   - proxy.go: one [net/http/httputil.ReverseProxy] (with Rewrite) per
//     backend, and the retry rule.
//
// The retry rule protects lock operations from duplication: a request is
// sent to the next eligible backend only when its connection was never
// established (refused, unreachable, dial timeout). Any failure after that
// (connection reset, backend hung up) is answered 502 with
// {"success":false,"error":"...","code":"outcome_unknown"}: the operation
// may have taken effect. When no backend is up, or every one refused the
// connection, the answer is 503 {"success":false,"error":"no healthy lock
// server","code":"unavailable"} with Retry-After: 1; nothing was done.
// Request bodies of up to 64 KiB are buffered so they can be resent.
// Every proxied response carries [BackendHeader] (X-Locksim-Backend) with
// the URL of the backend that served it. X-Forwarded-* headers are not set.
//
// # Usage
//
//	b, err := loadbalancer.New(loadbalancer.Config{
//		Backends: []string{"http://127.0.0.1:4001", "http://127.0.0.1:4002"},
//		Policy:   loadbalancer.PolicyLeastConnections,
//	})
//	if err != nil { ... }
//	if err := b.Start(ctx); err != nil { ... }
//	defer b.Close()
//	resp, err := http.Post(b.URL()+"/locks/acquire", "application/json", body)
//
// To "restart" a closed balancer on the same address, create a new one with
// Listen set to the old Addr().
//
// # Concurrency
//
// All methods are safe for concurrent use. Start runs one goroutine for the
// server and one health-check goroutine per backend. Close is abrupt: it
// drops client connections, cancels requests in flight (their clients see
// an error or outcome_unknown) and returns when every goroutine it owns has
// ended. The hot path takes no locks other than inside net/http: backend
// state is read with atomics and per-request scratch space is pooled.
package loadbalancer
