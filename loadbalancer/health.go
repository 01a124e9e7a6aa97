package loadbalancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// healthState counts consecutive check results the way HAProxy's rise and
// fall do: an up backend goes down after fall failures in a row, a down
// backend comes back after rise successes in a row, and a result that
// agrees with the current state resets the count. It is pure logic.
type healthState struct {
	up     bool
	streak int // consecutive results that contradict up
}

// observe records one result and reports whether the state flipped.
func (h *healthState) observe(ok bool, rise, fall int) bool {
	if ok == h.up {
		h.streak = 0
		return false
	}
	h.streak++
	need := fall
	if !h.up {
		need = rise
	}
	if h.streak < need {
		return false
	}
	h.up, h.streak = ok, 0
	return true
}

// record applies one observation (an active check, or a passive dial
// failure when check is false) to be.
func (b *Balancer) record(be *backend, err error, check bool) {
	be.mu.Lock()
	defer be.mu.Unlock()
	be.health.observe(err == nil, b.cfg.Rise, b.cfg.Fall)
	be.up.Store(be.health.up)
	if !check {
		return
	}
	be.lastCheck = b.cfg.Now()
	be.lastErr = ""
	if err != nil {
		be.lastErr = err.Error()
	}
}

// healthLoop checks be now and then every HealthInterval until ctx ends.
func (b *Balancer) healthLoop(ctx context.Context, be *backend) {
	t := time.NewTicker(b.cfg.HealthInterval)
	defer t.Stop()
	for {
		if b.pause.check(ctx) != nil {
			return
		}
		b.checkBackend(ctx, be)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkAll runs one check of every backend, one after another.
func (b *Balancer) checkAll(ctx context.Context) {
	for _, be := range b.backends {
		b.checkBackend(ctx, be)
	}
}

// checkBackend runs one health check of be and records its result, unless
// ctx ended meanwhile (the balancer is closing: the result means nothing).
func (b *Balancer) checkBackend(ctx context.Context, be *backend) {
	err := b.probe(ctx, be)
	if ctx.Err() != nil {
		return
	}
	b.record(be, err, true)
}

// probe performs GET HealthPath; a 2xx or 3xx answer within HealthTimeout
// is a success (as for HAProxy's httpchk).
func (b *Balancer) probe(ctx context.Context, be *backend) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.HealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, be.healthURL, nil)
	if err != nil {
		return err
	}
	resp, err := b.cfg.Transport.RoundTrip(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w: no answer within %v", ErrHealthCheck, b.cfg.HealthTimeout)
		}
		return fmt.Errorf("%w: %w", ErrHealthCheck, err)
	}
	// Drain a little so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("%w: status %d", ErrHealthCheck, resp.StatusCode)
	}
	return nil
}

// CheckPath is the path the balancer answers itself about its own health,
// for a VRRP health check such as keepalived's vrrp_script: 200
// {"status":"ok","backendsUp":N,"backends":M} while at least one backend
// is up, 503 {"status":"no healthy lock server",...} otherwise. (GET
// /health is proxied to a lock server, like every other lock API path.)
const CheckPath = "/balancer/health"

// serveCheck answers CheckPath.
func (b *Balancer) serveCheck(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, []byte(`{"success":false,"error":"method not allowed","code":"method_not_allowed"}`), nil)
		return
	}
	up := 0
	for _, be := range b.backends {
		if be.up.Load() {
			up++
		}
	}
	status, word := http.StatusOK, "ok"
	if up == 0 {
		status, word = http.StatusServiceUnavailable, "no healthy lock server"
	}
	body := fmt.Appendf(nil, `{"status":%q,"backendsUp":%d,"backends":%d}`, word, up, len(b.backends))
	writeJSON(w, status, body, nil)
}
