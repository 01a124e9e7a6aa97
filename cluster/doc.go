// Package cluster runs N real etcd members (go.etcd.io/etcd/server/v3/embed)
// inside this process, talking Raft over loopback, and injects the faults
// locksim needs: crashes, restarts and cut links.
//
// # Usage
//
//	c, err := cluster.New(cluster.Config{}) // 3 members, ports allocated
//	if err != nil { ... }
//	defer c.Close()
//	if err := c.Start(ctx); err != nil { ... } // sequential boot, waits for a leader
//	cli, _ := clientv3.New(clientv3.Config{Endpoints: c.ClientURLs()})
//	leader, _ := c.WaitLeader(ctx)
//	_ = c.Crash(leader)               // HardStop: no leadership transfer
//	_ = c.Restart(ctx, leader)        // same name, data dir and URLs
//	_ = c.Isolate("etcd-2")           // members keep running, traffic dropped
//	_ = c.Heal()
//	// with Config{PeerProxies: true}:
//	_ = c.SetDelay("etcd-2", 50*time.Millisecond, 0) // every link into etcd-2
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
// ports free. Up to ~12 s after a hard stop, a few dozen goroutines of peer
// HTTP connections linger and then end.
//
// # Links
//
// Links are cut with EtcdServer.CutPeer and mended with MendPeer; the
// members keep running. Cut(from, to) calls CutPeer(to) on `from`, which makes
// `from`:
//   - drop every Raft message it sends to `to`, and
//   - drop every Raft message `to` sends it over the peer streams.
//
// So a one-way cut silences Raft on the pair in BOTH directions (measured:
// Cut(follower, leader) alone makes the follower leaderless, and in a
// two-member cluster either one-way cut makes the leader step down because it
// no longer hears the follower). What still passes: `to` -> `from` pipeline
// POSTs (snapshots, and messages sent while no stream is attached, which does
// not happen while `from` keeps its stream readers connected) and non-Raft
// peer HTTP, notably a follower forwarding lease renewals to the leader.
// A true one-direction loss is not available from etcd's transport. CutBoth,
// Isolate and Partition cut both sides. Partition replaces the current links;
// a member named in no group is isolated. Cut, CutBoth and Isolate add to
// them; Heal mends all. The link state is the cluster's, not the member's: a
// restarted member gets its cuts re-applied right after boot (a few ms during
// which it may exchange messages), and a cut involving a down member takes
// effect when it comes back.
//
// # Delays
//
// With Config.PeerProxies every member's advertised peer URL (the one in the
// initial cluster, which the other members dial) is a
// go.etcd.io/etcd/pkg/v3/proxy server that forwards to the member's real peer
// listener on another port. SetDelay(name, latency, jitter) slows that proxy;
// Delays reports what is set. Overhead without a delay: within noise (0-0.3 ms
// on a write p50 of ~1.8-2.1 ms, -race, 2 cores).
//
// A delay is per destination member: it slows every link INTO that member,
// never one pair, because each member has exactly one advertised peer URL and
// all the others dial it. In Raft terms: rafthttp streams are dialled by the
// receiver, so the connections into member X carry X's own Raft messages to
// the others (as answers), and the others' messages to X cross THEIR proxies.
// SetDelay therefore puts the whole latency on the bytes X writes back
// (the proxy's Rx; Tx is left alone): every Raft message X sends, and every
// answer X gives to a peer request (pipeline POST, forwarded lease renewal
// when X leads, probes), arrives at least latency late. A Raft round trip
// between the leader and X gains at least latency whichever end is delayed;
// a commit gains it when the leader, or enough followers to leave no quorum
// of undelayed ones, is delayed. pkg/proxy sleeps per chunk and one chunk at
// a time, so under steady traffic (heartbeats every tick) a message waits
// between latency and twice it. Measured (TickMs 10): both followers at
// 40/100/200 ms -> write p50 +49/+131/+281 ms; the leader at 40/100 ms ->
// +79/+195 ms. A delay near ElectionMs makes followers (leader delayed) or
// the leader (CheckQuorum) time out and triggers elections.
//
// Jitter is capped at latency and drawn once per SetDelay call by pkg/proxy
// (global math/rand): the link gets one fixed latency in
// [latency-jitter, latency+jitter] until the next call. A delay lasts across
// Crash/Restart of its member. The proxies live from Start to Close and keep
// listening while their member is down: pkg/proxy accepts, fails to dial the
// member, and leaves the accepted connection open without serving it, so a
// peer's request through it fails only at that peer's timeout (5 s for
// rafthttp), not with "connection refused"; a restarted member still rejoins
// at once (measured: caught up ~60 ms after Restart). pkg/proxy binds
// ":port" (every interface); the cluster resets it to Host:port right away.
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
// Delays, SetDelay and the link operations take a short lock and never wait
// for etcd. Close
// aborts pending waits in Start and Restart. Nothing is printed: member logs
// go to Config.LogFile or are discarded.
package cluster
