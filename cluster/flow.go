package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// errLost: the bytes were dropped by a cut link; the connection that carried
// them is aborted.
var errLost = errors.New("cluster: lost to a cut link")

// errFlowClosed: Read after Close, or after the exchange ended.
var errFlowClosed = errors.New("cluster: flow closed")

// flowChunk is a piece of a flow's body and when it may be delivered, or the
// error that ended the body.
type flowChunk struct {
	data []byte
	due  time.Time
	err  error
}

// flow is one HTTP message crossing a peer proxy: a request from the member
// that opened the connection to the proxy's member, or a response back. It
// carries the message's bytes over one directed link: its header (see
// arrive) and its body, an io.ReadCloser that replaces the message's own.
//
// On an open link Read passes the body straight through. Once a delay or a
// cut applies, a goroutine (the pump) takes over reading the original body
// as fast as it arrives, stamps every chunk with the time the network
// admits it for, and queues it; Read hands chunks out when they are due. So
// the sender is never held back by a delay or a cut, and a delay does not
// add up over a stream. Once a cut has dropped a chunk, nothing more of the
// flow is ever delivered (the receiver never sees a message with a hole):
// Read blocks until the link is mended or the body ends, then fails with
// errLost.
type flow struct {
	nw       *network
	from, to int
	// signal marks rafthttp's transport signals, which carry no Raft message:
	// delayed like everything else, never cut.
	signal bool
	// lost and due are guarded by nw.mu.
	lost bool
	due  time.Time

	src io.ReadCloser
	// closeSrc: Close and abort close src. Not for a server's request body,
	// whose Close waits for a concurrent Read; the server closes it itself.
	closeSrc bool
	spawn    func(func()) // starts the pump
	chunks   chan flowChunk
	gone     <-chan struct{} // the exchange's context is done: nobody waits any more
	done     chan struct{}   // closed by Close
	aborted  chan struct{}   // closed by abort
	once     struct{ pump, done, aborted sync.Once }

	// Owned by the reader: pumped (the pump reads src, Read takes chunks),
	// the chunk being handed out, and the error that ended the body.
	pumped  bool
	pending []byte
	err     error
}

// newFlow makes a flow over src (nil: no body) on the link from -> to, for
// an exchange that ends with ctx. spawn starts its pump if it needs one (the
// proxy counts it, or refuses once closing: the flow then ends with ctx).
func newFlow(ctx context.Context, nw *network, spawn func(func()), from, to int, signal bool, src io.ReadCloser, closeSrc bool) *flow {
	if src == nil {
		src = http.NoBody
	}
	return &flow{
		nw: nw, from: from, to: to, signal: signal,
		src: src, closeSrc: closeSrc, spawn: spawn,
		gone:    ctx.Done(),
		chunks:  make(chan flowChunk, 64),
		done:    make(chan struct{}),
		aborted: make(chan struct{}),
	}
}

// startPump hands the reading of src over to the pump, once. Only the
// reader calls it (arrive runs before the body is read).
func (f *flow) startPump() {
	f.once.pump.Do(func() {
		f.pumped = true
		f.spawn(f.pump)
	})
}

func (f *flow) pump() {
	buf := make([]byte, 32<<10)
	for {
		n, err := f.src.Read(buf)
		if n > 0 {
			if due, lost := f.nw.admit(f, time.Now()); !lost {
				select {
				case f.chunks <- flowChunk{data: bytes.Clone(buf[:n]), due: due}:
				case <-f.done:
					return
				case <-f.gone:
					return
				}
			}
		}
		if err != nil {
			if f.nw.isLost(f) {
				err = errLost
			}
			select {
			case f.chunks <- flowChunk{err: err}:
			case <-f.done:
			case <-f.gone:
			}
			return
		}
	}
}

// arrive admits the message's header, which reached the proxy now: it
// returns when the header may go on, or errLost once a cut dropped it and
// the exchange ended or the link was mended. A delayed or dropped message's
// body is pumped from now on (read as it arrives).
func (f *flow) arrive() error {
	due, lost := f.nw.admit(f, time.Now())
	if lost {
		f.startPump()
		select {
		case <-f.gone:
		case <-f.aborted:
		}
		return errLost
	}
	if time.Until(due) > 0 {
		f.startPump()
	}
	return f.wait(due)
}

// wait returns when due is reached, or an error when the flow ends first.
func (f *flow) wait(due time.Time) error {
	d := time.Until(due)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-f.gone:
		return errFlowClosed
	case <-f.done:
		return errFlowClosed
	case <-f.aborted:
		return errLost
	}
}

// Read returns the body's bytes once they are due.
func (f *flow) Read(p []byte) (int, error) {
	if f.pumped {
		return f.readQueued(p)
	}
	for f.err == nil {
		n, err := f.src.Read(p)
		if n > 0 {
			due, lost := f.nw.admit(f, time.Now())
			if !lost {
				if err != nil {
					f.err = err // for the next call
				} else if time.Until(due) > 0 {
					f.startPump() // the rest is read ahead while this waits
				}
				if werr := f.wait(due); werr != nil {
					f.err = werr
					return 0, werr
				}
				return n, nil
			}
		}
		if err != nil {
			if f.nw.isLost(f) {
				err = errLost
			}
			f.err = err
		}
		// Dropped bytes: keep reading (the sender must not be held back).
	}
	return 0, f.err
}

// readQueued hands out the pump's chunks when they are due.
func (f *flow) readQueued(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		select {
		case c := <-f.chunks:
			if c.err != nil {
				f.err = c.err
				continue
			}
			if err := f.wait(c.due); err != nil {
				f.err = err
				continue
			}
			f.pending = c.data
		case <-f.aborted:
			f.err = errLost
		case <-f.done:
			f.err = errFlowClosed
		case <-f.gone:
			f.err = errFlowClosed
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// Close ends the flow: its pump stops queueing (it ends when the original
// body's Read returns), and it leaves the network's lost sets.
func (f *flow) Close() error {
	f.once.done.Do(func() {
		close(f.done)
		if f.closeSrc {
			_ = f.src.Close()
		}
		f.nw.forget(f)
	})
	return nil
}

// abort is called when the link that dropped the flow's bytes is mended:
// the waiting receiver gets errLost and its connection is aborted.
func (f *flow) abort() {
	f.once.aborted.Do(func() {
		close(f.aborted)
		if f.closeSrc {
			_ = f.src.Close()
		}
	})
}
