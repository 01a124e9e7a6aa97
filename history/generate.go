package history

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// GenConfig configures Generate. Zero fields take the documented defaults.
type GenConfig struct {
	Seed      uint64        // random seed
	Ops       int           // operations to generate (default 1000)
	Clients   int           // default 16
	Resources int           // default 4
	TTL       time.Duration // lease TTL (default 500ms)
	// Unknown is the probability that an operation's outcome is recorded
	// as unknown (its effect is then applied or not at random). Default 0.
	Unknown float64
	// Pause is the probability that a client stalls past its lease between
	// reading and writing, like a GC pause (default 0.01; negative = 0).
	Pause float64
	// Renew is the probability of a renew before the write (default 0.1;
	// negative = 0).
	Renew float64
}

func (c *GenConfig) defaults() {
	if c.Ops <= 0 {
		c.Ops = 1000
	}
	if c.Clients <= 0 {
		c.Clients = 16
	}
	if c.Resources <= 0 {
		c.Resources = 4
	}
	if c.TTL <= 0 {
		c.TTL = 500 * time.Millisecond
	}
	if c.Pause == 0 {
		c.Pause = 0.01
	}
	if c.Renew == 0 {
		c.Renew = 0.1
	}
}

// Generate returns a deterministic, valid (linearizable) history of lock
// cycles (acquire, read, optional renew, write, release) by simulated clients
// against a simulated lease lock and a fenced counter. Each operation takes
// effect at its call; operations of different clients overlap in time.
// It is meant for benchmarks and property tests. It is long because it is
// one simulation loop, the clients' cycles step by step, kept whole so that
// what makes the history valid reads in one place.
func Generate(cfg GenConfig) []Op {
	cfg.defaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	type resource struct {
		name    string
		holder  string
		expiry  int64
		value   int64
		highest int64
	}
	type client struct {
		name    string
		next    int64
		phase   int // 0 acquire, 1 read, 2 renew/write, 3 write, 4 release
		res     *resource
		token   string
		fencing int64
		readVal int64
		readOK  bool
	}
	ress := make([]*resource, cfg.Resources)
	for i := range ress {
		ress[i] = &resource{name: fmt.Sprintf("res-%d", i)}
	}
	cls := make([]*client, cfg.Clients)
	for i := range cls {
		cls[i] = &client{name: fmt.Sprintf("client-%d", i+1), next: rng.Int64N(int64(time.Millisecond))}
	}
	ttl := int64(cfg.TTL)
	ttlS := cfg.TTL.Seconds()
	var rev int64
	ops := make([]Op, 0, cfg.Ops)
	chance := func(p float64) bool { return p > 0 && rng.Float64() < p }

	for len(ops) < cfg.Ops {
		c := cls[0]
		for _, o := range cls[1:] {
			if o.next < c.next {
				c = o
			}
		}
		t := c.next
		ret := t + 20_000 + rng.Int64N(int64(time.Millisecond))
		unknown := chance(cfg.Unknown)
		op := Op{Client: c.name, Call: t}
		r := c.res
		done := func(out Outcome) {
			op.Outcome = out
			if out != Unknown {
				op.Return = &ret
			}
			ops = append(ops, op)
		}
		think := int64(rng.IntN(2_000_000))
		c.next = ret + think
		switch c.phase {
		case 0: // acquire
			r = ress[rng.IntN(len(ress))]
			c.res = r
			op.Op, op.Resource = OpAcquire, r.name
			op.Input = Input{TTL: &ttlS, Timeout: new(float64)}
			if r.holder != "" && t < r.expiry {
				if unknown {
					done(Unknown)
				} else {
					op.Output = Output{Error: "lock already held by another client", Code: "busy"}
					done(Fail)
				}
				// back off, longer when more clients share a resource
				c.next += int64(time.Millisecond) + rng.Int64N(int64(cfg.Clients*int(time.Millisecond)/cfg.Resources)+1)
				continue
			}
			if unknown && chance(0.5) {
				done(Unknown) // never reached etcd
				continue
			}
			rev++
			tok := fmt.Sprintf("tok-%d", rev)
			r.holder, r.expiry = tok, t+ttl
			if unknown {
				done(Unknown) // granted, but the client never learned it
				continue
			}
			c.token, c.fencing, c.phase = tok, rev, 1
			op.Output = Output{LockToken: tok, FencingToken: rev, TTL: &ttlS, ExpiresAt: time.Unix(0, r.expiry).UTC().Format(time.RFC3339Nano)}
			done(OK)
		case 1: // read
			op.Op, op.Resource, op.Input = OpRead, r.name, Input{FencingToken: c.fencing}
			c.phase = 2
			c.readOK = false
			if c.fencing < r.highest {
				op.Output = Output{Rejected: true}
				c.phase = 4
				done(Fail)
				continue
			}
			r.highest = c.fencing
			if unknown {
				c.phase = 4
				done(Unknown)
				continue
			}
			v := r.value
			c.readVal, c.readOK = v, true
			op.Output = Output{Value: &v}
			if chance(cfg.Pause) {
				c.next += ttl + int64(100*time.Millisecond)
			}
			done(OK)
		case 2: // maybe renew
			c.phase = 3
			if !chance(cfg.Renew) {
				c.next = t // no operation: write now
				continue
			}
			op.Op, op.Resource, op.Input = OpRenew, r.name, Input{LockToken: c.token, TTL: &ttlS}
			holds := r.holder == c.token && t < r.expiry
			if unknown {
				if holds && chance(0.5) {
					r.expiry = t + ttl
				}
				done(Unknown)
				continue
			}
			if !holds {
				op.Output = Output{Error: "lock not held", Code: "not_held"}
				done(Fail)
				continue
			}
			r.expiry = t + ttl
			op.Output = Output{TTL: &ttlS}
			done(OK)
		case 3: // write
			c.phase = 4
			nv := c.readVal + 1
			op.Op, op.Resource, op.Input = OpWrite, r.name, Input{FencingToken: c.fencing, Value: &nv}
			if c.fencing < r.highest {
				op.Output = Output{Rejected: true}
				done(Fail)
				continue
			}
			if unknown {
				if chance(0.5) {
					r.highest, r.value = c.fencing, nv
				}
				done(Unknown)
				continue
			}
			r.highest, r.value = c.fencing, nv
			done(OK)
		case 4: // release
			c.phase = 0
			op.Op, op.Resource, op.Input = OpRelease, r.name, Input{LockToken: c.token}
			holds := r.holder == c.token && t < r.expiry
			if unknown {
				if holds && chance(0.5) {
					r.holder = ""
				}
				done(Unknown)
				continue
			}
			if !holds {
				op.Output = Output{Error: "lock not held", Code: "not_held"}
				done(Fail)
				continue
			}
			r.holder = ""
			done(OK)
		}
	}
	return ops
}
