// Package faults injects faults into a locksim sandbox: a timed plan of Steps (scripted or drawn
// by Nemesis from a seed), a Runner that applies them through a small Env interface, and a
// Network that blocks and delays TCP links inside one process.
//
// faults imports none of its siblings: sim implements Env over the etcd cluster, the lock
// servers, the clients and the Network, and translates scenario steps into Steps.
//
// # Usage
//
//	steps := append(scripted, faults.Nemesis(spec, duration, rand.New(rand.NewPCG(seed, 0)))...)
//	r := &faults.Runner{Steps: steps, Env: env, OnEvent: publish}
//	events, err := r.Run(ctx) // returns when every step fired and every undo ran
//	r.HealAll(context.WithoutCancel(ctx)) // `final: heal`: restart, resume, heal the network
//	events = r.Events()
//
// Partitions reach Env as one-way cuts: CutsFor turns isolate/groups/bridge/from-to into the
// list of links to cut, the Runner calls Env.Cut for each and Env.Mend when the partition ends,
// counting overlapping partitions so that a link stays cut while any partition needs it. A heal
// step calls Env.Heal and ends every partition, delay and skew.
//
// Network shapes connections made through Network.Dialer(from) (lock server -> etcd client URL,
// balancer -> lock server, client -> balancer). A blocked link is a black hole: dials hang until
// their context ends, writes stall until unblocked, closed or past their deadline; no byte is lost,
// so gRPC and HTTP framing survive a heal.
//
// # Concurrency
//
// Network's methods are safe for concurrent use. A Runner is used by one goroutine: Run once,
// then HealAll; OnEvent is called synchronously from that goroutine and must not block long.
// Events may be called concurrently. Nemesis, CutsFor, ParseLink and Step.Validate are pure.
package faults
