package sim

import (
	"slices"
	"time"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/lockserver"
	"github.com/locksim/locksim/sim/clients"
	"github.com/locksim/locksim/sim/resource"
)

// State is everything a viewer draws of the sandbox at one moment.
type State struct {
	At          time.Duration          // since Started
	Pace        string                 // PaceFast or PaceClassroom
	Fencing     bool                   // the protected resource checks fencing tokens
	Members     []cluster.MemberStatus // each etcd member's own view; nil with external etcd
	Links       []Link                 // every cut or delayed link
	LockServers []Node
	Balancer    Node            // the only balancer; zero with a group (see Balancers)
	Balancers   []BalancerState // a group of two or more, with their VRRP state
	VIP         *VIPState       // the group's virtual address; nil with one balancer
	Clients     []clients.State
	Locks       map[string]lockserver.HeldLock // who holds each lock in etcd, by resource (as GET /locks/{id} answers, for a lock server not locksim's own)
	Resources   []resource.State               // the counters touched so far, by name, then the untouched ones of the workload (zero)
}

// Node is a lock server or a balancer.
type Node struct {
	Name     string
	URL      string
	Up       bool
	Paused   bool
	InFlight int64  // requests in flight (the balancer's count, per backend for lock servers)
	Requests uint64 // requests served so far
}

// Link is the state of one direction of a path between two components:
// cut, delayed, or both.
type Link struct {
	component.Link
	Cut   bool
	Delay time.Duration
}

// State reads the sandbox's current state.
func (sb *Sandbox) State() State {
	st := State{At: sb.Elapsed(), Pace: sb.cfg.Pace, Fencing: sb.resource.Fencing()}
	var members []cluster.Link
	if sb.cluster != nil {
		st.Members = sb.cluster.Status()
		members = sb.cluster.Links()
	}
	st.Links = links(members, sb.net.Links())
	st.LockServers, st.Balancer, st.Balancers, st.VIP = sb.nodes()
	st.Clients = sb.Clients()
	st.Locks = sb.heldLocks()
	st.Resources = sb.resources()
	return st
}

// links lists the cut or delayed links: between etcd members (from the
// cluster) and every shaped link of the network emulator.
func links(members []cluster.Link, network []faults.LinkState) []Link {
	var out []Link
	for _, l := range members {
		if l.Cut || l.Latency > 0 {
			out = append(out, Link{Link: component.Link{From: l.From, To: l.To}, Cut: l.Cut, Delay: l.Latency})
		}
	}
	for _, l := range network {
		if l.Blocked || l.Latency > 0 {
			out = append(out, Link{Link: component.Link{From: l.From, To: l.To}, Cut: l.Blocked, Delay: l.Latency})
		}
	}
	return out
}

// nodes reads the lock servers and the balancers, with the balancers'
// in-flight count per backend: the only balancer as a Node, or a group.
func (sb *Sandbox) nodes() ([]Node, Node, []BalancerState, *VIPState) {
	sb.mu.Lock()
	servers := make([]Node, len(sb.servers))
	running := make([]running, len(sb.servers))
	for i, s := range sb.servers {
		servers[i] = Node{Name: s.name, URL: "http://" + s.addr, Up: s.run != nil, Paused: s.paused}
		running[i] = s.run
	}
	sb.mu.Unlock()
	inflight, sent := map[string]int64{}, map[string]uint64{}
	group, vip := sb.balancerStates(inflight, sent)
	for i := range servers {
		servers[i].InFlight = inflight[servers[i].URL]
		servers[i].Requests = sent[servers[i].URL] // what the balancers sent it, unless it counts itself
		if r := running[i]; r != nil {
			if n, ok := r.Requests(); ok {
				servers[i].Requests = n
			}
		}
	}
	if vip == nil {
		return servers, group[0].Node, nil, nil
	}
	return servers, Node{}, group, vip
}

// resources lists the protected resource's counters: those touched so far,
// then the workload's untouched ones (zero).
func (sb *Sandbox) resources() []resource.State {
	touched := sb.resource.State()
	out := make([]resource.State, 0, len(touched)+len(sb.cfg.Workload.Resources))
	out = append(out, touched...)
	for _, r := range sb.cfg.Workload.Resources {
		if !slices.ContainsFunc(touched, func(s resource.State) bool { return s.Name == r }) {
			out = append(out, resource.State{Name: r})
		}
	}
	return out
}
