// Package sim wires a whole locksim sandbox from a Config — three embedded
// etcd members, stateless lock servers, a load balancer, the protected
// resource and simulated clients — and runs scenario files against it.
//
// It is the only package that knows every other one: it adapts the cluster
// and the lock servers to the small interfaces of package faults, turns
// scenario files into fault plans, records every client operation with
// package history, and checks the recorded history when a run ends.
//
// # Usage
//
//	sb, err := sim.New(sim.Config{Clients: 5})
//	if err != nil { ... }
//	if err := sb.Start(ctx); err != nil { ... }
//	defer sb.Close()
//	sb.StartWorkload(ctx)
//	fmt.Println(sb.Addresses().Balancer)
//
// A headless scenario run:
//
//	sc, _ := scenarios.ParseFile("scenarios/leader-crash.yaml")
//	rep, err := sim.RunScenario(ctx, sc, sim.RunOptions{OutDir: "out"})
//
// # The network
//
// Every link except etcd's own peer traffic goes through a faults.Network:
// clients -> balancer, balancer -> lock servers, lock servers -> etcd
// members. Links between etcd members are cut inside etcd's peer transport
// (package cluster). So a partition is real: members keep running, the
// minority cannot commit, and lock servers on the wrong side of a cut cannot
// reach the members they lost.
//
// # Concurrency
//
// A Sandbox is safe for concurrent use: faults, the web UI and the workload
// act on it at once. Close stops the workload first, then every component.
package sim
