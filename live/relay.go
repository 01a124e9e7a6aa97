package live

import (
	"context"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/locksim/locksim/web"
)

// Relay is one web.Source and web.Controller for a sequence of Webs: a
// headless run boots one sandbox per variant, and the page follows each in
// turn on one continuous timeline. Frames are renumbered; the times, op ids
// and fault ids of each new Web are shifted past the previous one's.
type Relay struct {
	mu       sync.Mutex
	cur      *View
	stop     context.CancelFunc
	done     chan struct{}
	seq      uint64
	tOff     int64
	idOff    uint64
	faultOff int
	maxT     int64
	maxID    uint64
	maxFault int
	log      *frameLog
	closed   bool
	histFile string

	out fanout
}

// NewRelay returns a relay with nothing attached yet.
func NewRelay() *Relay {
	return &Relay{log: newFrameLog(2000)}
}

// Attach makes w the relay's source and controller from now on.
func (r *Relay) Attach(w *View) {
	r.detach()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.seq > 0 {
		r.tOff, r.idOff, r.faultOff = r.maxT+1, r.maxID+1, r.maxFault+1
	}
	r.histFile = ""
	frames, cancel := w.Subscribe()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	r.cur, r.stop, r.done = w, stop, done
	r.forwardLocked(w.Frame())
	go func() {
		defer close(done)
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case f := <-frames:
				r.mu.Lock()
				r.forwardLocked(f)
				r.mu.Unlock()
			}
		}
	}()
}

func (r *Relay) detach() {
	r.mu.Lock()
	stop, done := r.stop, r.done
	r.stop, r.done = nil, nil
	r.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

func (r *Relay) forwardLocked(f web.Frame) {
	r.seq++
	f.Seq = r.seq
	f.T += r.tOff
	r.maxT = max(r.maxT, f.T)
	ops := make([]web.Op, len(f.Ops))
	for i, o := range f.Ops {
		o.ID += r.idOff
		o.Call += r.tOff
		if o.Return != 0 {
			o.Return += r.tOff
		}
		r.maxID = max(r.maxID, o.ID)
		ops[i] = o
	}
	fl := make([]web.Fault, len(f.Faults))
	for i, x := range f.Faults {
		x.ID += r.faultOff
		x.Start += r.tOff
		if x.End != 0 {
			x.End += r.tOff
		}
		r.maxFault = max(r.maxFault, x.ID)
		fl[i] = x
	}
	f.Ops, f.Faults = ops, fl
	f.Verdict.At += r.tOff
	if len(f.Verdict.Explanations) > 0 {
		es := make([]web.Explanation, len(f.Verdict.Explanations))
		for i, e := range f.Verdict.Explanations {
			e.Ops = slices.Clone(e.Ops)
			for j := range e.Ops {
				e.Ops[j] += r.idOff
			}
			es[i] = e
		}
		f.Verdict.Explanations = es
	}
	r.log.apply(f)
	r.out.publish(f)
}

// Frame returns a snapshot over every Web attached so far.
func (r *Relay) Frame() web.Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.snapshot()
}

// Subscribe returns the relayed frames.
func (r *Relay) Subscribe() (<-chan web.Frame, func()) { return r.out.subscribe(64) }

func (r *Relay) current() *View {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// Do hands the command to the current Web.
func (r *Relay) Do(ctx context.Context, c web.Command) error {
	w := r.current()
	if w == nil {
		return ErrClosed
	}
	return w.Do(ctx, c)
}

// SetHistoryFile makes HistoryHTML serve this file (a finished run's
// history.html) from now on, until the next Attach.
func (r *Relay) SetHistoryFile(path string) {
	r.mu.Lock()
	r.histFile = path
	r.mu.Unlock()
}

// HistoryHTML is the current Web's porcupine view, or the file given to
// SetHistoryFile.
func (r *Relay) HistoryHTML() ([]byte, error) {
	r.mu.Lock()
	w, file := r.cur, r.histFile
	r.mu.Unlock()
	if file != "" {
		return os.ReadFile(file)
	}
	if w == nil {
		return nil, os.ErrNotExist
	}
	return w.HistoryHTML()
}

// Close stops relaying (the attached Webs are not closed). Idempotent.
func (r *Relay) Close() error {
	r.detach()
	r.mu.Lock()
	r.closed = true
	r.cur = nil
	r.mu.Unlock()
	return nil
}

// RecordFrames writes src's snapshot and then every frame to w as
// frames.jsonl (web.AppendFrameJSONL) on its own goroutine, until stop is
// called; stop returns the first write error.
func RecordFrames(src web.Source, w io.Writer) (stop func() error) {
	frames, cancel := src.Subscribe()
	var werr error
	write := func(f web.Frame) {
		if werr == nil {
			werr = web.AppendFrameJSONL(w, f)
		}
	}
	write(src.Frame())
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case f := <-frames:
				write(f)
			case <-quit:
				for { // drain what was already published
					select {
					case f := <-frames:
						write(f)
					default:
						return
					}
				}
			}
		}
	}()
	var once sync.Once
	return func() error {
		once.Do(func() {
			close(quit)
			<-done
			cancel()
		})
		return werr
	}
}
