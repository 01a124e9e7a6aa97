// Package cluster runs N real etcd members (go.etcd.io/etcd/server/v3/embed)
// inside this process, talking Raft over loopback, and injects the faults
// locksim needs: crashes, restarts, and cut or delayed links between members,
// each direction on its own.
//
// # Usage
//
//	c, err := cluster.New(cluster.Config{}) // 3 members, ports allocated
//	if err != nil { ... }
//	defer c.Close()
//	if err := c.Start(ctx); err != nil { ... } // sequential boot, waits for a leader
//	cli, _ := clientv3.New(clientv3.Config{Endpoints: c.ClientURLs()})
//	leader, _ := c.WaitLeader(ctx)
//	_ = c.Crash(leader)                // HardStop: no leadership transfer
//	_ = c.Restart(ctx, leader)         // same name, data dir and URLs
//	_ = c.Cut("etcd-1", "etcd-2")      // etcd-1's messages to etcd-2 lost; etcd-2's still arrive
//	_ = c.Isolate("etcd-2")            // both directions of every link of etcd-2
//	_ = c.SetDelay("etcd-1", "etcd-3", 50*time.Millisecond, 0) // etcd-1 -> etcd-3 only
//	_ = c.Heal()                       // mend every cut, remove every delay
//
// Members are "etcd-1".."etcd-N". Peer and client ports are fixed when Start
// returns and survive Crash/Restart, so clients keep their endpoints. Start
// boots members one after another (in parallel each waits ~1 s for peers) and
// retries with fresh ports if a port was taken meanwhile. Restart never runs
// on an empty data dir (Raft would panic the whole process): ErrNoData.
//
// # Crash
//
// Crash calls EtcdServer.HardStop (no leadership transfer; Raft stops within
// a few ms, so failover starts at once) and then embed's Close, which waits
// about 1 s for peer stream connections: Crash returns after ~1 s, with the
// ports free. Client streams (watches, lease keep-alives) end the moment the
// crash begins, as a dead process's do (see the gate below): embed's Close
// would otherwise wait its 5 s request timeout for them (measured with a watch
// and a keep-alive open: Crash 5.2 s before, 0.8 s after; `go test -run '^$'
// -bench CrashWithStreams ./cluster/`). Up to ~12 s after a hard stop, a few
// dozen goroutines of peer HTTP connections linger and then end.
//
// HardStop closes the member's store while its gRPC servers still accept
// client requests, and etcd serves a serializable read straight from the
// store: a read in that window would panic on the closed store and take down
// the whole process, every member with it (measured: within the first crash
// under eight readers). So each member runs behind a gate, a gRPC interceptor
// that Crash closes before HardStop: later requests fail with
// codes.Unavailable (etcd's client then tries another member), and a request
// already inside that panics on the closed store fails the same way — what a
// request to a process that just died gets. For the same reason the member's
// peer proxy aborts every request to it from the moment Crash begins until
// Restart: a peer's /version request that reached etcd after its store was
// closed blocked forever on the store's lock and kept the whole stopped
// server reachable (measured: 7 of 9 crashed servers never freed while
// clients held watch and keep-alive streams on them, which make embed's Close
// wait seconds before it closes the peer listener).
//
// # Peer proxies
//
// Every member's advertised peer URL (the one in the initial cluster, which
// the other members dial) is a proxy's: an HTTPS server that relays to the
// member's real, plain-HTTP peer listener on another port. Start makes a CA
// and one client certificate per member (Common Name: the member's name); each
// member presents its own on every peer connection it opens, for Raft and for
// everything else, so the proxy knows which member sent each byte. It relays
// each HTTP message (a request from the member that opened the connection,
// or the response back) as a flow over one directed link, which the link's
// state may drop or delay (see Links and Delays). The proxies live from Start
// to Close and outlive crashes of their member: while it is down, every
// request is aborted, as a closed port would refuse it, and its peers retry.
// On an open link a message is copied straight through (no extra goroutine).
// Cost, measured with BenchmarkPeerProxies (txns through the leader, medians
// of 5 interleaved rounds, 2 cores, no -race): one client 275 µs a txn
// instead of 240 (0.87x the direct throughput); 16 clients about 14,000
// txn/s either way (pairwise ratios 0.72-1.65, median 1.05).
//
// # Links
//
// Cut(from, to) makes every message from `from` to `to` lost from then on,
// while `to`'s messages to `from` arrive as before. A message is an HTTP
// request or response between the members: a Raft pipeline or snapshot POST
// (from its sender), the body of a Raft stream (from the member that writes
// it; etcd's streams are dialled by the receiver), a forwarded lease renewal
// or lease lookup, a version check or a probe, and each answer to those.
// Bytes of a cut direction are dropped as they reach the proxy, never
// delivered later: the receiver waits in silence until it gives up, and when
// the link is mended its connection is broken so that it retries at once. A
// message is never delivered with a hole. Two transport signals carry no
// Raft message and pass a cut: a stream subscription (a GET whose answer
// carries the other member's messages) and the empty receipt of a pipeline
// or snapshot POST. So a request-response exchange outside Raft needs both
// directions (with from -> to cut, `from`'s forwarded renewals never arrive,
// and `to`'s arrive and take effect while `from`'s answers are lost), and
// Raft messages flow exactly in the directions left open.
//
// What Raft makes of it (measured with etcd v3.7.3, PreVote and CheckQuorum
// on): a follower that no longer hears the leader loses it and asks for
// votes, which the others refuse while they hear the leader; a follower the
// leader no longer hears keeps following it and keeps up with the commits
// from the entries the leader sends ahead, until 512 messages to it are
// unacknowledged (then its commit index stops), while nothing it proposes or
// forwards arrives; a leader nobody hears is replaced and then
// follows its successor, which it hears, without learning of any commit; a
// leader that hears no one steps down and stays leaderless.
//
// CutBoth, Isolate and Partition cut both directions. Partition replaces the
// current cuts; a member named in no group is isolated. Cut, CutBoth and
// Isolate add to them; Mend undoes one direction; Heal mends all and removes
// every delay. Links reports every directed link. Cuts and delays belong to
// the cluster, not to a member: they hold while a member is down and from
// the first byte after it restarts. Partitions stay real: the members keep
// running and a minority cannot commit.
//
// # Delays
//
// SetDelay(from, to, latency, jitter) delays every message from `from` to
// `to` by latency plus a jitter drawn uniformly from [-jitter, +jitter] (capped
// at latency) for each chunk of bytes as it reaches the proxy, from
// Config.Seed; `to`'s messages to `from` are not delayed. A flow keeps its
// order (a chunk never overtakes an earlier one) and the delay does not add
// up over a stream: the proxy reads ahead and hands each chunk on when it is
// due. A commit needs an entry to go from the leader to a follower and the
// acknowledgement back, so it gains at least the latency once either
// direction of enough leader-follower links to leave no quorum of undelayed
// ones is delayed, and twice it with both directions. Removing a delay does
// not speed up bytes already waiting. A delay near ElectionMs makes
// followers (leader's messages delayed) or the leader (CheckQuorum, answers
// delayed) time out and triggers elections.
//
// # Client TLS
//
// By default the members serve their client URLs in plain http://. With
// Config.ClientTLS they serve https:// only, with one server certificate for
// Config.Host signed by a CA that Start makes for the cluster's clients (not
// the peer CA: a client certificate never passes a peer proxy). With
// Config.ClientCertAuth they also require a client certificate signed by
// that CA, and Start makes one. ClientTLSFiles returns the PEM files (what
// etcdctl takes as --cacert, --cert and --key); their TLSConfig is the
// clientv3 client's:
//
//	c, _ := cluster.New(cluster.Config{ClientTLS: true, ClientCertAuth: true})
//	_ = c.Start(ctx)
//	files, _ := c.ClientTLSFiles()
//	tlsCfg, _ := files.TLSConfig()
//	cli, _ := clientv3.New(clientv3.Config{Endpoints: c.ClientURLs(), TLS: tlsCfg})
//
// A client without the CA, or without the certificate when one is required,
// fails its TLS handshake; clientv3 reports that only as the deadline of
// each call passing.
//
// # Status and leader
//
// Status reads each running member's own view (Lead, Term, CommittedIndex,
// AppliedIndex) from atomics: cheap enough for a UI polling every 100 ms.
// Role is "leader", "follower", "candidate" (knows no leader: pre-candidate
// or candidate, which etcd does not tell apart) or "down". Leader reports
// the member that claims leadership and is named leader, at its term, by a
// quorum of the configured members; during an election, or in a minority,
// there is none.
//
// # Concurrency
//
// A Cluster is safe for concurrent use. Start and Close are serialised;
// Crash and Restart of the same member are serialised; Status, Leader, Links,
// SetDelay and the link operations take a short lock and never wait for
// etcd. Close aborts pending waits in Start and Restart. Nothing is printed:
// member logs go to Config.LogFile or are discarded.
package cluster
