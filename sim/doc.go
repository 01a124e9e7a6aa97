// Package sim is the sandbox: one whole locking service of the design in
// this process — three embedded etcd members (package cluster), stateless
// lock servers (lockserver), one load balancer or a VRRP group of them
// behind a virtual address (loadbalancer), the protected resource
// (sim/resource) and simulated clients (sim/clients) — wired from a Config,
// through an in-process network emulator so that links can be cut.
//
// The Sandbox implements faults.Env over the real components and owns the
// fault injector every fault goes through (Faults), the history recorder
// every client writes to (Recorder), and a watcher of the lock keys in etcd
// (Observer) that knows who holds what and settles unknown outcomes
// (EtcdRecord, for history.Resolve). State is everything a viewer draws.
// Running a scenario file is package run's; the web view is package live's.
//
// # Usage
//
//	sb, err := sim.New(sim.Config{Clients: 5}) // or Pace: sim.PaceClassroom
//	if err != nil { ... }
//	if err := sb.Start(ctx); err != nil { ... }
//	defer sb.Close()
//	sb.StartWorkload(ctx)
//	fmt.Println(sb.Addresses().Balancer)
//	sb.Faults().Apply(ctx, faults.Step{Fault: faults.FaultCrash, Target: "etcd:leader"})
//
// # The network
//
// Every link except etcd's own peer traffic goes through a faults.Network:
// clients -> balancer, balancer -> lock servers, lock servers -> etcd
// members, and the VRRP adverts between the balancers of a group. Links
// between etcd members are cut inside etcd's peer transport (package
// cluster). So a partition is real: members keep running, the minority
// cannot commit, and lock servers on the wrong side of a cut cannot reach
// the members they lost.
//
// # Balancers
//
// With Config.Balancers of 2 or more, balancer-1..N elect a master by VRRP
// (loadbalancer.Node; balancer-i at priority 100 + 10*(N-i)) and share a
// virtual address (loadbalancer.VirtualAddress) at BalancerListen, which is
// the entry point. Only the election moves the address — the sandbox never
// looks at who is alive. Simulated clients resolve the address to its owner
// when they connect, through their own links (client-k -> balancer-i), so a
// refused connection is a clean failure; outside clients use its listener.
// Start returns once the first election gave the address an owner.
// BalancerEvents and SubscribeBalancers report every change of VRRP state;
// State.Balancers and State.VIP show the group.
//
// Config.BalancerMode "tcp" runs every balancer in its layer-4 mode: each
// client connection goes to one lock server, its bytes copied unparsed,
// through the same links of the network emulator; a balancer's in-flight
// count is then its open connections.
//
// # Lock servers that are not locksim's own
//
// Config.LockServerCmd runs every lock server as its own process, from a
// command line with {listen}, {name} and {etcd} (package sim/external):
// any program that serves the lock API and talks to etcd. Each process
// reaches each etcd member through a loopback proxy of its own
// (faults.Network.Proxy), whose traffic is the link lockserver-N ->
// etcd-M, so partitions and delays cut its real traffic; a crash is SIGKILL,
// a restart runs the command again, a pause is SIGSTOP and a resume
// SIGCONT, sent to its process group. Its output goes to Config.LogDir. A
// process that exits on its own is an event (FaultExit) in the fault log,
// and its slot is down until restarted.
//
// Config.LockServerFunc builds every lock server in this process from the
// caller's code: an http.Handler served at the lock server's address, whose
// etcd client dials through LockServerEnv.Dial (the network emulator). A
// pause holds every byte into and out of it.
//
// At Start, each such lock server must answer GET /health with 200 within
// Config.ReadyTimeout and answer GET /locks/{id} with the documented JSON
// (conformance.Probe); otherwise Start fails with ErrBadLockServer and one
// line naming the server and the problem. Such a server keeps its locks in
// etcd its own way: State shows who holds each lock as GET /locks/{id}
// answers, and EtcdRecord holds nothing, so unknown outcomes stay unknown.
//
// # Concurrency
//
// A Sandbox is safe for concurrent use: faults, the web view and the
// workload act on it at once. Close stops the workload first, then every
// component.
package sim
