// Package bench is locksim's benchmark suite (`locksim bench`): the lock
// cycle (acquire, release) measured on every path a request can take, next
// to the raw etcd calls that are its ceiling and to the peers a user could
// pick instead.
//
// Suites (Config.Only): raw (the cycle's own etcd calls with clientv3),
// rawgrant (a lease granted per lock), direct (HTTP on one lock server),
// balancer and balancer-tcp (the full path through locksim's balancer in its
// http and tcp modes), haproxy and haproxy-tcp (Debian's haproxy in mode
// http and mode tcp in front of the same lock servers), mutex (etcd's
// concurrency.Mutex), failover (leader crash to first successful acquire),
// balancer-failover (a VRRP pair of balancers: master crash to first
// successful acquire through the virtual address, at the sandbox's fast
// advert interval and at the design's default), scale (latency and memory
// with many locks held) and checker (porcupine on generated histories).
// Throughput rows run at several concurrencies on distinct keys and on one
// contended key.
//
// The environment is a bare cluster with lock servers and our balancer in
// each mode, not a Sandbox: no network emulator, no simulated clients, no
// observer, so the numbers measure the product, not the sandbox around it.
// haproxy runs as child processes; so does our balancer with
// Config.BalancerExe (`locksim bench --balancer-process`), for a
// like-for-like comparison.
//
// # Usage
//
//	rep, err := bench.Run(ctx, bench.Config{Quick: true, Only: []string{bench.Raw, bench.Balancer}})
//	for _, r := range rep.Rows { fmt.Println(r.Name, r.Concurrency, r.CyclesPerSec) }
//
// # Concurrency
//
// Run runs the suites one after another, each with its own goroutines, and
// returns when every one of them is gone.
package bench
