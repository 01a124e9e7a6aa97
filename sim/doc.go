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
// # Concurrency
//
// A Sandbox is safe for concurrent use: faults, the web view and the
// workload act on it at once. Close stops the workload first, then every
// component.
package sim
