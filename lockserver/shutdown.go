package lockserver

import (
	"context"
	"errors"
)

// Shutdown stops the server gracefully, for a process that received
// SIGTERM: it closes the listener (new connections are refused, so a
// balancer sends them elsewhere), lets the requests in flight — blocking
// acquires included — finish and answer, waits for background cleanups
// (lease revokes), and then closes like Close. When ctx ends first, the
// rest is cut short as by Close and ctx's error is returned. Shutdown is
// safe to call after or concurrently with Close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	hs, closed := s.hs, s.closed
	s.mu.Unlock()
	var err error
	if hs != nil && !closed {
		s.log.Info("lock server draining")
		err = hs.Shutdown(ctx)
		if err == nil {
			idle := make(chan struct{})
			go func() {
				s.inflight.Wait()
				close(idle)
			}()
			select {
			case <-idle:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
	}
	if cerr := s.Close(); cerr != nil && err == nil && !errors.Is(cerr, context.Canceled) {
		err = cerr
	}
	return err
}
