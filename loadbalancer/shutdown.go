package loadbalancer

import (
	"context"
	"fmt"
)

// Shutdown stops the balancer gracefully, for a process that received
// SIGTERM: it closes the listener, lets the requests in flight finish
// (proxied answers are delivered), and then closes like Close. When ctx
// ends first, the remaining requests are cancelled as by Close and ctx's
// error is returned. Shutdown is safe to call after or concurrently with
// Close.
func (b *Balancer) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	srv, closed := b.srv, b.closed
	b.mu.Unlock()
	var err error
	if srv != nil && !closed {
		if serr := srv.Shutdown(ctx); serr != nil {
			err = fmt.Errorf("loadbalancer: shutdown: %w", serr)
		}
	}
	if cerr := b.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}
