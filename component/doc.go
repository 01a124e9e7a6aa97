// Package component names the parts of a locksim sandbox: the kinds of
// component (etcd members, lock servers, the balancer, clients), their names
// ("etcd-2", "lockserver-1", "client-3", "balancer", or "balancer-1" when
// there are several), the roles a fault can target instead of a name
// ("etcd:leader", "client:holder", "balancer:master"), the directed
// links between two components ("lockserver-1->etcd-2") and the phases of a
// simulated client's lock cycle.
//
// It is the one vocabulary every other package shares: the fault runner,
// the scenario parser, the sandbox and the live view all build and read
// names through it, so a name is spelled in one place.
//
// # Usage
//
//	name := component.Name(component.Etcd, 2)     // "etcd-2"
//	kind := component.KindOf("lockserver-1")       // component.LockServer
//	t, err := component.ParseTarget("etcd:leader") // a role, resolved when a fault fires
//	links, err := component.ParseLink("lockserver-1<->etcd-2") // both directions
//
// # Concurrency
//
// Everything here is a pure function of its arguments or a constant.
package component
