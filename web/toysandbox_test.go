package web

import (
	"context"
	"fmt"
	"github.com/locksim/locksim/component"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// toySandbox is a make-believe sandbox for the page's tests and the
// screenshot: it implements Source and Controller with a crude state machine
// (leader election after a crash or partition, clients cycling through
// acquire/read/write/release, a lease that expires under a paused client, a
// two-step gc-pause scenario). It has nothing to do with etcd.
type toySandbox struct {
	mu         sync.Mutex
	rng        *rand.Rand
	tick       time.Duration
	t          int64
	seq        uint64
	members    []Member
	ls         []Node
	bal        Node
	clients    []ClientState
	phaseLeft  []int
	cut        map[[2]string]bool
	fencing    bool
	lock       Lock
	res        Resource
	ops        []Op
	newOps     []Op
	open       map[string]int // client -> index in ops of its pending op
	faults     []Fault
	newFaults  []Fault
	leaderless int
	sc         *ScenarioState
	scStep     int
	scAt       int64
	stepMode   bool
	subs       map[chan Frame]struct{}
	stop       chan struct{}
	wg         sync.WaitGroup
}

func newToySandbox(clients int, tick time.Duration) *toySandbox {
	s := &toySandbox{
		rng:     rand.New(rand.NewPCG(1, 2)),
		tick:    tick,
		bal:     Node{Name: "balancer", URL: "http://127.0.0.1:9000", Up: true},
		cut:     map[[2]string]bool{},
		fencing: true,
		lock:    Lock{Resource: "order:12345", TTLms: 2000},
		res:     Resource{Name: "order:12345"},
		open:    map[string]int{},
		subs:    map[chan Frame]struct{}{},
		stop:    make(chan struct{}),
	}
	for i := 1; i <= 3; i++ {
		s.members = append(s.members, Member{Name: fmt.Sprintf("etcd-%d", i), Up: true, Role: "follower", Term: 2})
		s.ls = append(s.ls, Node{Name: fmt.Sprintf("lockserver-%d", i), URL: fmt.Sprintf("http://127.0.0.1:910%d", i), Up: true})
	}
	s.members[0].Leader, s.members[0].Role = true, "leader"
	for i := 1; i <= clients; i++ {
		s.clients = append(s.clients, ClientState{Name: fmt.Sprintf("client-%d", i), Phase: "idle", Resource: "order:12345"})
		s.phaseLeft = append(s.phaseLeft, i)
	}
	return s
}

func (s *toySandbox) start() {
	s.wg.Go(func() {
		tk := time.NewTicker(s.tick)
		defer tk.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tk.C:
				s.step()
			}
		}
	})
}

func (s *toySandbox) close() {
	close(s.stop)
	s.wg.Wait()
}

// advance runs n ticks at once (to fill the history before a screenshot).
func (s *toySandbox) advance(n int) {
	for range n {
		s.step()
	}
}

func (s *toySandbox) Frame() Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.frameLocked()
	f.Ops = slices.Clone(s.ops)
	f.Faults = slices.Clone(s.faults)
	return f
}

func (s *toySandbox) Subscribe() (<-chan Frame, func()) {
	ch := make(chan Frame, 64)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

func (s *toySandbox) frameLocked() Frame {
	f := Frame{
		Seq: s.seq, T: s.t, Pace: "classroom", Fencing: s.fencing,
		Members: slices.Clone(s.members), LockServers: slices.Clone(s.ls), Balancer: s.bal,
		Clients: slices.Clone(s.clients), Resources: []Resource{s.res},
		Verdict: Verdict{Lock: "linearizable", Resource: "linearizable", CheckedOps: len(s.ops), At: s.t, HistoryURL: "/history.html"},
	}
	// The toy's stand-in for a stale write: fencing off while a client is
	// frozen.
	if !s.fencing && slices.ContainsFunc(s.clients, func(c ClientState) bool { return c.Paused }) {
		f.Verdict.Resource = "violated"
		var ids []uint64
		for i := len(s.ops) - 1; i >= 0 && len(ids) < 2; i-- {
			ids = append(ids, s.ops[i].ID)
		}
		f.Verdict.Explanations = []Explanation{{Resource: s.res.Name, Model: "resource", Kind: "stale-write-accepted",
			Text: "client-1 wrote with an old fencing token, which nothing rejected.", Ops: ids}}
	}
	l := s.lock
	l.Believers = nil
	for _, c := range s.clients {
		if c.Believes {
			l.Believers = append(l.Believers, c.Name)
		}
		if c.Phase == "acquiring" {
			l.Waiters++
		}
	}
	f.Locks = []Lock{l}
	for k := range s.cut {
		f.Links = append(f.Links, Link{Link: component.Link{From: k[0], To: k[1]}, Cut: true})
	}
	slices.SortFunc(f.Links, func(a, b Link) int { return strings.Compare(a.From+a.To, b.From+b.To) })
	if s.sc != nil {
		sc := *s.sc
		f.Scenario = &sc
	}
	return f
}

func (s *toySandbox) leader() int {
	for i, m := range s.members {
		if m.Leader {
			return i
		}
	}
	return -1
}

func (s *toySandbox) startOp(c int, op string) {
	s.ops = append(s.ops, Op{ID: uint64(len(s.ops) + 1), Client: s.clients[c].Name, Op: op, Resource: s.res.Name, Call: s.t})
	s.open[s.clients[c].Name] = len(s.ops) - 1
	s.newOps = append(s.newOps, s.ops[len(s.ops)-1])
}

func (s *toySandbox) endOp(c int, outcome, detail string) {
	i, ok := s.open[s.clients[c].Name]
	if !ok {
		return
	}
	delete(s.open, s.clients[c].Name)
	s.ops[i].Outcome, s.ops[i].Detail = outcome, detail
	if outcome != "unknown" {
		s.ops[i].Return = s.t
	}
	switch outcome {
	case "ok":
		s.clients[c].OK++
	case "fail":
		s.clients[c].Fail++
	default:
		s.clients[c].Unknown++
	}
	s.newOps = append(s.newOps, s.ops[i])
}

func (s *toySandbox) step() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t += int64(100 * time.Millisecond)
	s.seq++

	// Raft, roughly.
	ld := s.leader()
	if ld < 0 {
		s.leaderless++
		if s.leaderless >= 8 {
			for i := range s.members {
				if s.members[i].Up && !s.members[i].Partitioned {
					s.members[i].Leader, s.members[i].Role = true, "leader"
					ld = i
					break
				}
			}
			for i := range s.members {
				if s.members[i].Up && !s.members[i].Partitioned {
					s.members[i].Term++
				}
			}
			s.leaderless = 0
		}
	}
	if ld >= 0 {
		s.members[ld].Commit += uint64(1 + s.rng.IntN(4))
		for i := range s.members {
			m := &s.members[i]
			if m.Up && !m.Partitioned {
				m.Commit, m.Applied, m.Term = s.members[ld].Commit, s.members[ld].Commit, s.members[ld].Term
			}
		}
	}
	s.bal.Requests += uint64(len(s.clients))
	for i := range s.ls {
		if s.ls[i].Up && !s.ls[i].Paused {
			s.ls[i].Requests += uint64(s.rng.IntN(3))
			s.ls[i].InFlight = int64(s.rng.IntN(3))
		}
	}

	// The lease.
	if s.lock.Held {
		holder := slices.IndexFunc(s.clients, func(c ClientState) bool { return c.Name == s.lock.Owner })
		if holder >= 0 && !s.clients[holder].Paused && ld >= 0 {
			s.lock.ExpiresInMs = s.lock.TTLms
		} else {
			s.lock.ExpiresInMs -= 100
		}
		if s.lock.ExpiresInMs <= 0 {
			s.lock = Lock{Resource: s.lock.Resource, TTLms: s.lock.TTLms}
		}
	}

	// Clients.
	for i := range s.clients {
		c := &s.clients[i]
		if c.Paused {
			continue
		}
		if s.phaseLeft[i]--; s.phaseLeft[i] > 0 {
			continue
		}
		s.phaseLeft[i] = 2 + s.rng.IntN(3)
		switch c.Phase {
		case "idle":
			c.Phase = "acquiring"
			s.startOp(i, "acquire")
		case "acquiring":
			switch {
			case ld < 0:
				s.endOp(i, "unknown", "no leader")
				c.Phase = "idle"
			case s.lock.Held:
				s.endOp(i, "fail", "lock already held by another client")
				c.Phase = "idle"
			default:
				tok := int64(s.members[ld].Commit)
				s.lock.Held, s.lock.Owner, s.lock.FencingToken, s.lock.ExpiresInMs = true, c.Name, tok, s.lock.TTLms
				c.FencingToken, c.Believes, c.Phase = tok, true, "reading"
				s.endOp(i, "ok", fmt.Sprintf("fencing token %d", tok))
				s.startOp(i, "read")
			}
		case "reading":
			s.endOp(i, "ok", fmt.Sprintf("value %d", s.res.Value))
			c.Phase = "writing"
			s.startOp(i, "write")
		case "writing":
			if s.fencing && c.FencingToken < s.res.HighestToken {
				s.res.Rejected++
				s.endOp(i, "fail", "stale fencing token")
			} else {
				s.res.Value++
				s.res.HighestToken = max(s.res.HighestToken, c.FencingToken)
				s.endOp(i, "ok", fmt.Sprintf("wrote %d", s.res.Value))
			}
			c.Phase = "releasing"
			s.startOp(i, "release")
		case "releasing":
			if s.lock.Held && s.lock.Owner == c.Name {
				s.lock = Lock{Resource: s.lock.Resource, TTLms: s.lock.TTLms}
				s.endOp(i, "ok", "")
			} else {
				s.endOp(i, "fail", "not the holder")
			}
			c.Believes, c.Phase = false, "idle"
		}
	}

	s.scenarioLocked()

	f := s.frameLocked()
	f.Ops, f.Faults = s.newOps, s.newFaults
	s.newOps, s.newFaults = nil, nil
	for ch := range s.subs {
		select {
		case ch <- f:
		default:
		}
	}
}

var toyScenarioSteps = []struct {
	after  time.Duration
	note   string
	action Command
}{
	{time.Second, "Client 1 is frozen, like a long GC pause. Its lease expires; client 2 gets a higher fencing token.", Command{Action: "pause", Target: "client-1"}},
	{4 * time.Second, "Client 1 wakes up still believing it holds the lock. Its write carries a stale fencing token and is rejected.", Command{Action: "resume", Target: "client-1"}},
}

func (s *toySandbox) scenarioLocked() {
	if s.sc == nil || !s.sc.Running || s.sc.WaitingToContinue {
		return
	}
	if s.scStep >= len(toyScenarioSteps) {
		s.sc.Running = false
		return
	}
	st := toyScenarioSteps[s.scStep]
	if s.t-s.scAt < int64(st.after) {
		return
	}
	if s.stepMode {
		s.sc.WaitingToContinue = true
		return
	}
	s.fireLocked()
}

func (s *toySandbox) fireLocked() {
	st := toyScenarioSteps[s.scStep]
	s.scStep++
	s.sc.Step, s.sc.Note, s.sc.WaitingToContinue = s.scStep, st.note, false
	_ = s.doLocked(st.action)
}

func (s *toySandbox) Do(_ context.Context, c Command) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.doLocked(c)
}

func (s *toySandbox) addFault(kind, target string) {
	s.faults = append(s.faults, Fault{ID: len(s.faults) + 1, Fault: kind, Target: target, Start: s.t})
	s.newFaults = append(s.newFaults, s.faults[len(s.faults)-1])
}

func (s *toySandbox) endFaults(match func(Fault) bool) {
	for i := range s.faults {
		if s.faults[i].End == 0 && match(s.faults[i]) {
			s.faults[i].End = s.t
			s.newFaults = append(s.newFaults, s.faults[i])
		}
	}
}

func (s *toySandbox) doLocked(c Command) error {
	mi := slices.IndexFunc(s.members, func(m Member) bool { return m.Name == c.Target })
	li := slices.IndexFunc(s.ls, func(n Node) bool { return n.Name == c.Target })
	ci := slices.IndexFunc(s.clients, func(n ClientState) bool { return n.Name == c.Target })
	switch c.Action {
	case "crash", "restart":
		up := c.Action == "restart"
		switch {
		case mi >= 0:
			m := &s.members[mi]
			m.Up, m.Leader, m.Role = up, false, map[bool]string{true: "follower", false: "down"}[up]
		case li >= 0:
			s.ls[li].Up = up
		default:
			return fmt.Errorf("toy: no node %q", c.Target)
		}
		if up {
			s.endFaults(func(f Fault) bool { return f.Fault == "crash" && f.Target == c.Target })
		} else {
			s.addFault("crash", c.Target)
		}
	case "pause", "resume":
		p := c.Action == "pause"
		switch {
		case ci >= 0:
			s.clients[ci].Paused = p
		case li >= 0:
			s.ls[li].Paused = p
		default:
			return fmt.Errorf("toy: no node %q", c.Target)
		}
		if p {
			s.addFault("pause", c.Target)
		} else {
			s.endFaults(func(f Fault) bool { return f.Fault == "pause" && f.Target == c.Target })
		}
	case "partition":
		var names []string
		for gi, g := range c.Groups {
			members := 0
			for _, n := range g {
				if strings.HasPrefix(n, "etcd-") {
					members++
				}
			}
			for _, n := range g {
				names = append(names, n)
				if i := slices.IndexFunc(s.members, func(m Member) bool { return m.Name == n }); i >= 0 && members*2 < len(s.members) {
					s.members[i].Partitioned = true
					s.members[i].Leader = false
					s.members[i].Role = "follower"
				}
				for hi, h := range c.Groups {
					if hi == gi {
						continue
					}
					for _, o := range h {
						s.cut[[2]string{n, o}] = true
					}
				}
			}
		}
		s.addFault("partition", strings.Join(names, ","))
	case ActionHeal:
		clear(s.cut)
		for i := range s.members {
			s.members[i].Partitioned = false
		}
		s.endFaults(func(f Fault) bool { return f.Fault == "partition" })
	case ActionFencing:
		s.fencing = c.Value
	case ActionStepMode:
		s.stepMode = c.Value
	case ActionRunScenario:
		s.sc = &ScenarioState{Name: c.Scenario, Description: "Client 1 stops like a long GC pause after reading the resource.", Steps: len(toyScenarioSteps), Running: true}
		s.scStep, s.scAt = 0, s.t
	case ActionContinue:
		if s.sc == nil || !s.sc.WaitingToContinue {
			return fmt.Errorf("toy: nothing to continue")
		}
		s.scAt = s.t - int64(toyScenarioSteps[s.scStep].after)
		s.fireLocked()
	default:
		return fmt.Errorf("toy: %w: %s", ErrBadCommand, c.Action)
	}
	return nil
}
