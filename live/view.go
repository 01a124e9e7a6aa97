package live

import (
	"cmp"
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/locksim/locksim/sim"
	"github.com/locksim/locksim/web"
)

// ErrClosed is returned by a closed Web's controls.
var ErrClosed = errors.New("sim: web view closed")

// Config configures a Web. Zero values take the documented defaults.
type Config struct {
	// Interval is the frame period. Default 100ms.
	Interval time.Duration
	// CheckEvery is how often the live checker re-checks the history so
	// far. Default 2s; negative disables the live checker.
	CheckEvery time.Duration
	// CheckTimeout bounds each live check (and the rendering of porcupine's
	// view). Default 1s.
	CheckTimeout time.Duration
	// SnapshotOps caps the ops a snapshot carries (the most recent ones).
	// Default 2000.
	SnapshotOps int
	// HistoryURL is the verdict's link to porcupine's view. Default
	// "/history.html".
	HistoryURL string
	// Buffer is each subscription's channel size. Default 64.
	Buffer int
}

func (c *Config) fill() {
	if c.Interval <= 0 {
		c.Interval = 100 * time.Millisecond
	}
	if c.CheckEvery == 0 {
		c.CheckEvery = 2 * time.Second
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = time.Second
	}
	if c.SnapshotOps <= 0 {
		c.SnapshotOps = 2000
	}
	if c.HistoryURL == "" {
		c.HistoryURL = "/history.html"
	}
	if c.Buffer <= 0 {
		c.Buffer = 64
	}
}

// Web is the visualizer's view of one running Sandbox: it implements
// web.Source (a frame every Interval) and web.Controller (the page's
// buttons), runs the live checker and serves porcupine's view of the history
// so far (HistoryHTML).
type View struct {
	sb  *sim.Sandbox
	cfg Config

	mu      sync.Mutex
	seq     uint64
	log     *frameLog
	started bool
	closed  bool
	cancel  context.CancelFunc
	ctx     context.Context // Start's context; background work of the controls runs under it

	out fanout

	// Owned by the publisher goroutine.
	nextOp     int          // sequence number of the first op not yet published
	pending    map[int]bool // published ops that were still pending, by sequence number
	sentFaults map[int]web.Fault

	scen  scenarioRun
	check liveCheck

	wg sync.WaitGroup
}

// New returns the view of sb (which must have been started). Call Start
// to begin publishing.
func New(sb *sim.Sandbox, cfg Config) *View {
	cfg.fill()
	w := &View{
		sb:         sb,
		cfg:        cfg,
		log:        newFrameLog(cfg.SnapshotOps),
		pending:    map[int]bool{},
		sentFaults: map[int]web.Fault{},
		ctx:        context.Background(),
	}
	w.check.verdict = web.Verdict{HistoryURL: cfg.HistoryURL}
	w.publish() // the first snapshot exists before Start
	return w
}

// Start begins publishing frames and, unless disabled, the live checker.
// Both stop when ctx ends or Close is called.
func (w *View) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.closed {
		return errors.New("sim: web view already started")
	}
	w.started = true
	w.ctx, w.cancel = context.WithCancel(ctx)
	ctx = w.ctx
	w.wg.Go(func() {
		t := time.NewTicker(w.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w.publish()
			}
		}
	})
	if w.cfg.CheckEvery > 0 {
		w.wg.Go(func() { w.checkLoop(ctx) })
	}
	return nil
}

// Close stops publishing, the live checker, a scenario started from the page
// and every background control, and returns when they are gone. It is
// idempotent. The sandbox itself is not closed.
func (w *View) Close() error {
	w.mu.Lock()
	w.closed = true
	cancel := w.cancel
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	w.wg.Wait()
	w.check.render.Lock() // no rendering into the dir while it goes
	defer w.check.render.Unlock()
	w.check.mu.Lock()
	dir := w.check.dir
	w.check.dir = ""
	w.check.mu.Unlock()
	if dir != "" {
		return os.RemoveAll(dir)
	}
	return nil
}

// Frame returns a full snapshot: the current state, the most recent ops and
// every fault so far.
func (w *View) Frame() web.Frame {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.snapshot()
}

// Subscribe returns every following frame, in order, on a bounded channel. A
// subscriber that falls behind gets what it missed merged into a later frame;
// the publisher never waits for it.
func (w *View) Subscribe() (<-chan web.Frame, func()) {
	return w.out.subscribe(w.cfg.Buffer)
}

// publish builds one frame, records it and hands it to subscribers.
func (w *View) publish() {
	f := w.state()
	f.Ops = w.newOps()
	f.Faults = w.newFaults()
	w.mu.Lock()
	w.seq++
	f.Seq = w.seq
	w.log.apply(f)
	w.mu.Unlock()
	w.out.publish(f)
}

// newOps returns the ops begun since the previous frame and those that were
// pending then and have ended since. Ids are the recorder's sequence
// numbers; only what the recorder still keeps is read, so a frame costs the
// same however long the session.
func (w *View) newOps() []web.Op {
	rec := w.sb.Recorder()
	if rec == nil {
		return nil
	}
	if rec.Len() == w.nextOp && len(w.pending) == 0 {
		return nil
	}
	var out []web.Op
	for seq := range w.pending {
		op, kept := rec.Op(seq)
		if kept && opPending(op) {
			continue
		}
		if kept {
			out = append(out, webOp(seq, op))
		}
		delete(w.pending, seq)
	}
	ops, first := rec.OpsFrom(w.nextOp)
	for i, op := range ops {
		out = append(out, webOp(first+i, op))
		if opPending(op) {
			w.pending[first+i] = true
		}
	}
	w.nextOp = first + len(ops)
	slices.SortFunc(out, func(a, b web.Op) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// newFaults returns the fault events that are new or changed since the
// previous frame.
func (w *View) newFaults() []web.Fault {
	var out []web.Fault
	for _, ev := range w.sb.Events() {
		f := webFault(ev)
		if old, ok := w.sentFaults[f.ID]; ok && old == f {
			continue
		}
		w.sentFaults[f.ID] = f
		out = append(out, f)
	}
	return out
}

// state reads the sandbox's current state (everything but ops and faults).
func (w *View) state() web.Frame {
	st := w.sb.State()
	f := web.Frame{T: int64(st.At), Pace: st.Pace, Fencing: st.Fencing, Links: []web.Link{}}
	cut := map[string]bool{}
	for _, l := range st.Links {
		f.Links = append(f.Links, web.Link{Link: l.Link, Cut: l.Cut, DelayMs: l.Delay.Milliseconds()})
		if l.Cut {
			cut[l.From], cut[l.To] = true, true
		}
	}
	for _, m := range st.Members {
		f.Members = append(f.Members, web.Member{
			Name: m.Name, Up: m.Up, Leader: m.Up && m.Leader, Partitioned: cut[m.Name], Role: m.Role,
			Term: m.Term, Commit: m.CommitIndex, Applied: m.AppliedIndex,
		})
	}
	node := func(n sim.Node) web.Node {
		return web.Node{Name: n.Name, URL: n.URL, Up: n.Up, Paused: n.Paused, InFlight: n.InFlight, Requests: n.Requests}
	}
	f.Balancer = node(st.Balancer)
	for _, b := range st.Balancers {
		f.Balancers = append(f.Balancers, web.Balancer{
			Node: node(b.Node), State: b.State, Priority: b.Priority, Preempt: b.Preempt, Master: b.Master, OwnsVIP: b.OwnsVIP,
			AdvertsSent: b.AdvertsSent, AdvertsHeard: b.AdvertsHeard, MasterDownMs: b.MasterDown.Milliseconds(),
			Since: int64(b.Since), Reason: b.Reason,
		})
	}
	if v := st.VIP; v != nil {
		f.VIP = &web.VIP{URL: v.URL, Owner: v.Owner, Moves: v.Moves}
	}
	for _, n := range st.LockServers {
		f.LockServers = append(f.LockServers, node(n))
	}
	f.Clients = make([]web.ClientState, 0, len(st.Clients))
	for _, c := range st.Clients {
		f.Clients = append(f.Clients, web.ClientState{
			Name: c.Name, Paused: c.Paused, Phase: webPhase(c.Phase), Resource: c.Resource,
			FencingToken: c.FencingToken, Believes: c.Believes, SkewMs: c.Skew.Milliseconds(),
			OK: c.OK, Fail: c.Fail, Unknown: c.Unknown,
		})
	}
	f.Locks = buildLocks(w.sb.Config().Workload.Resources, st.Locks, st.Clients, st.At)
	f.Resources = make([]web.Resource, 0, len(st.Resources))
	for _, r := range st.Resources {
		f.Resources = append(f.Resources, web.Resource{Name: r.Name, Value: r.Value, HighestToken: r.HighestToken, Rejected: r.Rejected})
	}
	f.Verdict = w.verdict()
	f.Scenario = w.scenarioState()
	return f
}
