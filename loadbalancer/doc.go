// Package loadbalancer is locksim's in-process load balancer: the HAProxy
// or Nginx of the design, in front of the stateless lock servers. Like
// HAProxy it has two modes (Config.Mode): "http" (the default) balances
// requests, "tcp" balances connections and copies their bytes unparsed.
//
// It has a pure core and a thin I/O shell:
//   - picker.go: [RoundRobin] and [LeastConnections] choose among the
//     eligible backends (ties in least-connections are broken round-robin).
//   - health.go: an active check of every backend's HealthPath each
//     HealthInterval, with HAProxy's rise/fall counting. Backends start up,
//     so traffic flows at once; Fall failed checks in a row take one down,
//     Rise good checks in a row bring it back. A proxied request (tcp mode:
//     connection) whose connection is refused also counts as one failed
//     check.
//   - proxy.go, wire.go, upstream.go: the http mode. An [net/http.Server]
//     takes the clients' requests; each is written by hand (HTTP/1.1) on a
//     kept-alive connection to the chosen backend and its answer's header
//     is parsed in place, so that a proxied request allocates next to
//     nothing; a watcher goroutine per backend connection notices a
//     connection its backend closed while it was idle and drops it before
//     a request could be lost on it. And the retry rule.
//   - tcp.go: the tcp mode (see there for what it decides and gives up).
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
// the URL of the backend that served it. X-Forwarded-* headers are not set;
// hop-by-hop headers are not forwarded either way. The balancer answers two
// paths itself: [MetricsPath] (its Prometheus metrics) and [CheckPath] (GET
// /balancer/health: 200 while any backend is up, 503 otherwise — what
// keepalived's vrrp_script checks); in tcp mode only on Config.AdminListen.
//
// In tcp mode none of the above per-request rules apply: a client's
// connection goes to one backend for its whole life, a refused connection
// to a backend is retried on the next one (nothing was forwarded yet), and
// a client whose connection no backend takes sees it reset (the balancer
// cannot answer in HTTP).
//
// # Redundant balancers
//
// One balancer is a single point of failure. The design answers it with
// two (or more) balancers sharing a virtual IP through VRRP; this package
// has the same parts:
//   - vrrp.go: [Router], the pure VRRP election (RFC 5798): the highest
//     priority is master and advertises every interval; a backup takes over
//     when it has heard no advert it accepts for the master-down interval,
//     3 x interval + skew, skew = (256 - priority) / 256 x interval; with
//     preemption (the default) a backup ignores a lower-priority master;
//     priority 255 is master at once; equal priorities go to the greater
//     name. No goroutines, time passed in, table-tested.
//   - node.go: [Node], its I/O shell: adverts as JSON lines over TCP
//     through an injected dialer (so that a network emulator can cut them),
//     an advert not delivered within one interval is lost; Pause freezes it.
//   - vip.go: [VirtualAddress], the one address clients use. Its owner is
//     the balancer whose claim came last; a master claims it with every
//     advert (as a switch learns the virtual MAC from every advert) and
//     releases it when it becomes backup. Nothing else moves it: it never
//     checks who is alive. When it moves, the connections made to the old
//     owner are closed, as the new owner would reset them.
//
// Two masters at once — a cut between the balancers, VRRP's split brain —
// take the address in turns. The lock service stays safe through it: the
// balancers keep no state, and etcd decides every lock.
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
// The same in tcp mode, with the balancer's own paths on a second address:
//
//	b, err := loadbalancer.New(loadbalancer.Config{
//		Backends: backends, Mode: loadbalancer.ModeTCP, AdminListen: "127.0.0.1:9090",
//	})
//
// To "restart" a closed balancer on the same address, create a new one with
// Listen set to the old Addr().
//
// A redundant pair: a balancer and a Node for each, one VirtualAddress.
//
//	vip := loadbalancer.NewVirtualAddress(loadbalancer.VirtualConfig{})
//	_ = vip.Start(ctx)
//	n1, _ := loadbalancer.NewNode(loadbalancer.NodeConfig{
//		RouterConfig: loadbalancer.RouterConfig{Name: "balancer-1", Priority: 110},
//		Serve:        b1.Addr(), VIP: vip,
//	})
//	_ = n1.Start(ctx) // and n2 for balancer-2, priority 100
//	n1.SetPeers(map[string]string{"balancer-2": n2.AdvertAddr()})
//	n2.SetPeers(map[string]string{"balancer-1": n1.AdvertAddr()})
//	http.Post(vip.URL()+"/locks/acquire", ...) // through the master
//
// # Concurrency
//
// All methods are safe for concurrent use. Start runs one goroutine for the
// server (tcp mode: the accept loop; one more with AdminListen) and one
// health-check goroutine per backend; the http mode runs one watcher per
// connection to a backend, the tcp mode two goroutines per client
// connection. Close is abrupt: it drops client and backend connections,
// cancels requests in flight (their clients see an error or
// outcome_unknown) and returns when every goroutine it owns has ended.
// Shutdown drains first. The hot path takes one short lock per request to
// borrow a backend connection (tcp mode: none); backend state is read with
// atomics and per-request scratch space is pooled. Pause holds requests (tcp
// mode: bytes and new connections) and health checks at their next
// checkpoint.
//
// A Router is used by one goroutine (its Node's). Node and VirtualAddress
// are safe for concurrent use; a Node runs one goroutine for its election,
// one per peer it sends to and one per connection it reads adverts from;
// Close returns when they are gone. Node.Close is a crash (no goodbye, the
// claim on the address stays).
package loadbalancer
