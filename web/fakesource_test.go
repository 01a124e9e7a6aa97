package web

import (
	"context"
	"sync"
)

// fakeSource is a Source the test drives by hand: push sends one frame to
// every subscriber without ever blocking, and counts the frames a full
// subscriber channel could not take (the producer being slowed down).
type fakeSource struct {
	mu      sync.Mutex
	snap    Frame
	subs    map[chan Frame]struct{}
	blocked int
}

func newFakeSource(snap Frame) *fakeSource {
	return &fakeSource{snap: snap, subs: map[chan Frame]struct{}{}}
}

func (s *fakeSource) Frame() Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

func (s *fakeSource) Subscribe() (<-chan Frame, func()) {
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

// push publishes f and folds it into the snapshot.
func (s *fakeSource) push(f Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap = Merge(s.snap, f)
	for ch := range s.subs {
		select {
		case ch <- f:
		default:
			s.blocked++
		}
	}
}

func (s *fakeSource) blockedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blocked
}

func (s *fakeSource) subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// fakeController records the commands it is given.
type fakeController struct {
	mu   sync.Mutex
	cmds []Command
	err  error
}

func (c *fakeController) Do(_ context.Context, cmd Command) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.cmds = append(c.cmds, cmd)
	return nil
}

func (c *fakeController) got() []Command {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Command(nil), c.cmds...)
}
