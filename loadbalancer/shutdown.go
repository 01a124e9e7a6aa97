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
//
// In tcp mode the balancer cannot see requests: it closes each client
// connection once the last bytes on it went to the client and nothing moved
// for 20ms (between two requests of a request/response protocol), and the
// connections still busy when ctx ends are cut.
func (b *Balancer) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	srv, started, closed := b.srv, b.started, b.closed
	b.mu.Unlock()
	var err error
	switch {
	case !started || closed:
	case srv != nil:
		if serr := srv.Shutdown(ctx); serr != nil {
			err = fmt.Errorf("loadbalancer: shutdown: %w", serr)
		}
	default:
		if serr := b.shutdownTCP(ctx); serr != nil {
			err = fmt.Errorf("loadbalancer: shutdown: %w", serr)
		}
	}
	if cerr := b.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}
