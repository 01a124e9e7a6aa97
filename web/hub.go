package web

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"
)

// message is one encoded frame on its way to viewers. seq is the newest frame
// it contains.
type message struct {
	seq  uint64
	data []byte
}

// viewer is one connected websocket viewer, as the hub sees it.
type viewer struct {
	send chan message // bounded; full means the viewer is too slow
	done chan struct{}
	once sync.Once
}

func (v *viewer) stop() { v.once.Do(func() { close(v.done) }) }

// hub fans the source's frames out to viewers. One producer goroutine (run)
// reads the source, records every frame for replay and, every interval,
// encodes the frames coalesced since the last tick once and offers the bytes
// to every viewer without blocking: a viewer whose buffer is full is dropped.
type hub struct {
	src       Source
	interval  time.Duration
	bufSize   int
	maxFrames int
	maxBytes  int
	now       func() time.Time

	mu      sync.Mutex
	viewers map[*viewer]struct{}
	log     [][]byte // every frame recorded, JSON, oldest first (capped at maxFrames and maxBytes)
	logSize int      // bytes in log
	logSeq  uint64   // seq of the newest recorded frame
	replay  *Frame   // the final state of a replayed run, when there is no source
	lastT   int64    // sandbox time of the newest frame
	lastAt  time.Time

	dropped atomic.Uint64
	sent    atomic.Uint64
}

func newHub(src Source, interval time.Duration, bufSize, maxFrames, maxBytes int, now func() time.Time) *hub {
	return &hub{
		src:       src,
		interval:  interval,
		bufSize:   bufSize,
		maxFrames: maxFrames,
		maxBytes:  maxBytes,
		now:       now,
		viewers:   map[*viewer]struct{}{},
	}
}

// load records frames of a finished run (before Start), all of them: a
// finished run's file is its whole past, not a session that goes on.
func (h *hub) load(frames []Frame) error {
	var final Frame
	for i, f := range frames {
		if err := h.recordFrame(f, false); err != nil {
			return err
		}
		if i == 0 {
			final = f
		} else {
			final = Merge(final, f)
		}
	}
	if len(frames) > 0 {
		h.replay = &final
	}
	return nil
}

// record appends f to the replay log, trimming the oldest frames beyond the
// caps. Frames older than the newest recorded one are skipped (the snapshot
// already holds them).
func (h *hub) record(f Frame) error { return h.recordFrame(f, true) }

func (h *hub) recordFrame(f Frame, trim bool) error {
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if f.Seq != 0 && f.Seq <= h.logSeq {
		return nil
	}
	h.logSeq = f.Seq
	h.lastT, h.lastAt = f.T, h.now()
	h.log = append(h.log, data)
	h.logSize += len(data)
	if trim && (len(h.log) > h.maxFrames || h.logSize > h.maxBytes) {
		// Trim a tenth at a time so that trimming is amortised.
		n := max(len(h.log)-h.maxFrames, len(h.log)/10, 1)
		for _, d := range h.log[:n] {
			h.logSize -= len(d)
		}
		h.log = append([][]byte(nil), h.log[n:]...)
	}
	return nil
}

// frames returns the recorded frames (shared, read-only).
func (h *hub) frames() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.log[:len(h.log):len(h.log)]
}

// sinceStart estimates the sandbox's current time from the newest frame.
func (h *hub) sinceStart() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastAt.IsZero() {
		return 0
	}
	return time.Duration(h.lastT) + h.now().Sub(h.lastAt)
}

// run is the producer goroutine. frames is the source's subscription (nil
// when replaying a finished run). It returns when ctx ends.
func (h *hub) run(ctx context.Context, frames <-chan Frame) {
	tick := time.NewTicker(h.interval)
	defer tick.Stop()
	var pending *Frame
	for {
		select {
		case <-ctx.Done():
			return
		case f, ok := <-frames:
			if !ok {
				frames = nil
				continue
			}
			_ = h.record(f) // a frame that cannot be encoded cannot be sent either
			if pending == nil {
				pending = &f
			} else {
				m := Merge(*pending, f)
				pending = &m
			}
		case <-tick.C:
			if pending == nil {
				continue
			}
			data, err := json.Marshal(pending)
			if err == nil {
				h.broadcast(message{seq: pending.Seq, data: data})
			}
			pending = nil
		}
	}
}

// broadcast offers m to every viewer without blocking and drops the viewers
// whose buffer is full.
func (h *hub) broadcast(m message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for v := range h.viewers {
		select {
		case v.send <- m:
		default:
			h.dropLocked(v)
		}
	}
}

// add registers a viewer and returns it with the snapshot it must be sent
// first. Frames broadcast from now on queue in its buffer, so nothing falls
// between the snapshot and the updates.
func (h *hub) add() (*viewer, message, error) {
	v := &viewer{send: make(chan message, h.bufSize), done: make(chan struct{})}
	h.mu.Lock()
	h.viewers[v] = struct{}{}
	replay := h.replay
	h.mu.Unlock()
	var snap Frame
	switch {
	case h.src != nil:
		snap = h.src.Frame()
	case replay != nil:
		snap = *replay
	}
	data, err := json.Marshal(snap)
	if err != nil {
		h.remove(v)
		return nil, message{}, err
	}
	return v, message{seq: snap.Seq, data: data}, nil
}

// remove unregisters v (a viewer that left or failed).
func (h *hub) remove(v *viewer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.viewers, v)
	v.stop()
}

// drop unregisters v for being slow and counts it.
func (h *hub) drop(v *viewer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropLocked(v)
}

func (h *hub) dropLocked(v *viewer) {
	if _, ok := h.viewers[v]; !ok {
		return
	}
	delete(h.viewers, v)
	v.stop()
	h.dropped.Add(1)
}

// closeAll stops every viewer.
func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for v := range h.viewers {
		delete(h.viewers, v)
		v.stop()
	}
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.viewers)
}
