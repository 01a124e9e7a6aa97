// Package faults injects faults into a locksim sandbox and owns their
// vocabulary: the fault kinds (crash, restart, pause, resume, partition,
// delay, heal, clock-skew), the Step that describes one fault and the rules
// of what each fault may target (Step.Check), the partition shapes and the
// cuts that realise them (CutsFor), and the random faults of the Nemesis.
//
// An Injector applies Steps to the sandbox through the small Env interface
// (package sim implements it over the real components) and keeps the
// sandbox's one log of fault events: a scripted step (through a Runner), a
// nemesis draw and a click in the web page (Injector.Apply) all look and are
// undone the same way. A Runner fires a plan of Steps at their times, waits
// for their When conditions and undoes each fault after its For. A Network
// blocks and delays the TCP links inside one process.
//
// Imports follow the data flow: a scenario file (package scenarios) decodes
// into this package's Steps; component names come from package component.
//
// # Usage
//
//	in := &faults.Injector{Env: env}                 // one per sandbox
//	id, err := in.Apply(ctx, faults.Step{Fault: faults.FaultCrash, Target: "etcd:leader"})
//	in.Undo(ctx, id)                                 // restart it
//
//	r := &faults.Runner{Steps: plan, Injector: in}   // a scenario's steps
//	events, err := r.Run(ctx) // returns when every step fired and every undo ran
//	r.HealAll(context.WithoutCancel(ctx))           // `final: heal`: restart, resume, heal the network
//
// Partitions reach Env as one-way cuts: CutsFor turns isolate/groups/bridge/
// from-to into the list of links to cut, the Injector calls Env.Cut for each
// and Env.Mend when the partition ends, counting overlapping partitions —
// from any source — so that a link stays cut while any partition needs it.
// A heal step calls Env.Heal and ends every partition, delay and skew.
//
// Network shapes connections made through Network.Dialer(from) (lock server
// -> etcd client URL, balancer -> lock server, client -> balancer, and the
// VRRP adverts balancer -> balancer). A
// blocked link is a black hole: dials hang until their context ends, writes
// stall until unblocked, closed or past their deadline; no byte is lost, so
// gRPC and HTTP framing survive a heal. A Proxy (Network.Proxy) puts a
// program that does not dial through the Network — a lock server running as
// its own process — under the same links: it listens on loopback and
// forwards every connection through Network.Dialer(from).
//
// # Concurrency
//
// Injector and Network are safe for concurrent use; the Injector calls
// subscribers synchronously from the goroutine that applied the fault. A
// Runner is used by one goroutine: Run once, then HealAll. Nemesis,
// CutsFor and Step.Check are pure.
package faults
