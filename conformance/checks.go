package conformance

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/locksim/locksim/lockserver"
)

// checks is the battery, in the order it runs. Each is independent: it
// locks resources of its own and releases what it took.
var checks = []check{
	{"health", "GET /health answers 200 {\"status\":\"ok\"}", checkHealth},
	{"acquire", "a free lock is granted with the documented answer; GET shows its owner and fencing token; the holder's release frees it", checkAcquire},
	{"lock_busy", "a held lock answers 409 lock_busy: at once with timeout 0, not before the timeout otherwise", checkBusy},
	{"owner-only", "only the holder's token releases or renews (409 not_holder otherwise, the lock stays); a released token holds nothing", checkOwnerOnly},
	{"renew", "renew answers 200 with the same lockToken and fencingToken and a later expiresAt", checkRenew},
	{"fencing", "fencing tokens strictly increase from grant to grant of one resource", checkFencing},
	{"ttl-expiry", "a lock nobody releases expires after its ttl (not before) and is granted to a waiter; its old token is refused", checkExpiry},
	{"wake-on-release", "a release wakes a blocked acquire long before its timeout", checkWake},
	{"fifo", "blocked acquires are granted in arrival order", checkFIFO},
	{"400 malformed_json", "a body that is not JSON", badBody(`{"resourceId":`, lockserver.CodeMalformedJSON)},
	{"400 unknown_field", "a field the API does not have", badBody(`{"resourceId":"%s","ttl":5,"owner":"x"}`, lockserver.CodeUnknownField)},
	{"400 invalid_type", "a field of the wrong JSON type", badBody(`{"resourceId":"%s","ttl":"five"}`, lockserver.CodeInvalidType)},
	{"400 missing_field", "no resourceId, no ttl", badBodies(lockserver.CodeMissingField, `{"ttl":5}`, `{"resourceId":"%s"}`)},
	{"400 invalid_resource_id", "a resourceId outside 1-256 bytes of [A-Za-z0-9:._/-]", badBodies(lockserver.CodeInvalidResourceID,
		`{"resourceId":"has space","ttl":5}`, `{"resourceId":"","ttl":5}`, `{"resourceId":"`+strings.Repeat("r", 257)+`","ttl":5}`)},
	{"400 invalid_ttl", "ttl outside (0, 3600]", badBodies(lockserver.CodeInvalidTTL,
		`{"resourceId":"%s","ttl":0}`, `{"resourceId":"%s","ttl":-1}`, `{"resourceId":"%s","ttl":3601}`)},
	{"400 invalid_timeout", "timeout outside [0, 300]", badBodies(lockserver.CodeInvalidTimeout,
		`{"resourceId":"%s","ttl":5,"timeout":-1}`, `{"resourceId":"%s","ttl":5,"timeout":301}`)},
	{"404 not_found", "an unknown path", checkNotFound},
	{"405 method_not_allowed", "a wrong method, with Allow", checkMethod},
	{"413 body_too_large", "a body over 64 KiB, sent whole or chunked", checkTooLarge},
	{"415 unsupported_media_type", "a Content-Type that is not application/json", checkMediaType},
	{"unavailable", "without an etcd quorum: /health 503, an acquire 503 unavailable (with Retry-After) or 502/504 outcome_unknown; back to 200 after", checkUnavailable},
}

func checkHealth(ctx context.Context, b *battery) error {
	a, err := b.call(ctx, func(ctx context.Context) (answer, error) { return b.c.do(ctx, http.MethodGet, "/health", "", nil) })
	if err != nil {
		return err
	}
	if a.status != http.StatusOK {
		return fmt.Errorf("%s answered %d, want 200", a.req, a.status)
	}
	f, err := a.fields()
	if err != nil {
		return err
	}
	if st := f.str("status", true); st != "ok" && f.bad == "" {
		f.fail(`"status": %q (want "ok")`, st)
	}
	return f.err()
}

func checkAcquire(ctx context.Context, b *battery) error {
	res, ttl := b.res("acquire"), 30*time.Second
	before := time.Now()
	g, err := b.mustAcquire(ctx, res, "conformance-a", ttl)
	if err != nil {
		return err
	}
	if g.ExpiresAt.Before(before.Add(ttl - time.Second)) {
		return fmt.Errorf("asked for a ttl of %s, got an expiresAt %s after the request", ttl, g.ExpiresAt.Sub(before).Round(time.Millisecond))
	}
	if g.TTL != 0 && g.TTL < ttl {
		return fmt.Errorf(`asked for a ttl of %s, the answer's "ttl" is %s`, ttl, g.TTL)
	}
	l, err := b.get(ctx, res)
	if err != nil {
		return err
	}
	switch {
	case !l.Held:
		return fmt.Errorf("GET /locks/%s shows a lock just granted as not held", res)
	case l.OwnerID != "conformance-a":
		return fmt.Errorf("GET /locks/%s shows ownerId %q, want the acquire's clientId %q", res, l.OwnerID, "conformance-a")
	case l.FencingToken != g.FencingToken:
		return fmt.Errorf("GET /locks/%s shows fencingToken %d, the grant had %d", res, l.FencingToken, g.FencingToken)
	}
	if err := b.mustRelease(ctx, res, g.LockToken); err != nil {
		return err
	}
	return b.wantFree(ctx, res, "after the holder's release")
}

func checkBusy(ctx context.Context, b *battery) error {
	res := b.res("busy")
	g, err := b.mustAcquire(ctx, res, "conformance-a", 30*time.Second)
	if err != nil {
		return err
	}
	defer b.release(context.WithoutCancel(ctx), res, g.LockToken)
	a, err := b.acquire(ctx, res, "conformance-b", 30*time.Second, 0)
	if err != nil {
		return err
	}
	if err := a.wantError(http.StatusConflict, lockserver.CodeLockBusy); err != nil {
		return fmt.Errorf("an acquire of a held lock with timeout 0: %w", err)
	}
	wait := time.Second
	start := time.Now()
	a, err = b.acquire(ctx, res, "conformance-b", 30*time.Second, wait)
	took := time.Since(start)
	if err != nil {
		return err
	}
	if err := a.wantError(http.StatusConflict, lockserver.CodeLockBusy); err != nil {
		return fmt.Errorf("an acquire of a held lock with timeout %s: %w", wait, err)
	}
	if took < wait*9/10 {
		return fmt.Errorf("an acquire with timeout %s answered lock_busy after only %s", wait, took.Round(time.Millisecond))
	}
	return nil
}

func checkOwnerOnly(ctx context.Context, b *battery) error {
	res := b.res("owner")
	g, err := b.mustAcquire(ctx, res, "conformance-a", 30*time.Second)
	if err != nil {
		return err
	}
	for _, tok := range []string{"not-the-token", strings.ToUpper(g.LockToken) + "0"} {
		a, err := b.release(ctx, res, tok)
		if err != nil {
			return err
		}
		if err := a.wantError(http.StatusConflict, lockserver.CodeNotHolder); err != nil {
			return fmt.Errorf("a release with a token that is not the holder's: %w", err)
		}
		a, err = b.renew(ctx, res, tok, 0)
		if err != nil {
			return err
		}
		if err := a.wantError(http.StatusConflict, lockserver.CodeNotHolder); err != nil {
			return fmt.Errorf("a renew with a token that is not the holder's: %w", err)
		}
	}
	l, err := b.get(ctx, res)
	if err != nil {
		return err
	}
	if !l.Held || l.FencingToken != g.FencingToken {
		return fmt.Errorf("after refused releases the lock must still be the holder's (fencingToken %d), GET shows held=%v fencingToken=%d",
			g.FencingToken, l.Held, l.FencingToken)
	}
	if err := b.mustRelease(ctx, res, g.LockToken); err != nil {
		return err
	}
	a, err := b.release(ctx, res, g.LockToken)
	if err != nil {
		return err
	}
	if err := a.wantError(http.StatusConflict, lockserver.CodeNotHolder); err != nil {
		return fmt.Errorf("a second release of a released token: %w", err)
	}
	a, err = b.renew(ctx, res, g.LockToken, 0)
	if err != nil {
		return err
	}
	if err := a.wantError(http.StatusConflict, lockserver.CodeNotHolder); err != nil {
		return fmt.Errorf("a renew of a released token: %w", err)
	}
	return nil
}

func checkRenew(ctx context.Context, b *battery) error {
	res := b.res("renew")
	g, err := b.mustAcquire(ctx, res, "conformance-a", 5*time.Second)
	if err != nil {
		return err
	}
	defer b.release(context.WithoutCancel(ctx), res, g.LockToken)
	for _, ttl := range []time.Duration{30 * time.Second, 0} {
		a, err := b.renew(ctx, res, g.LockToken, ttl)
		if err != nil {
			return err
		}
		r, err := a.wantGrant("the holder's renew")
		if err != nil {
			return err
		}
		switch {
		case r.FencingToken != g.FencingToken:
			return fmt.Errorf("renew changed the fencingToken from %d to %d", g.FencingToken, r.FencingToken)
		case r.LockToken != g.LockToken:
			return fmt.Errorf("renew changed the lockToken")
		case r.ExpiresAt.Before(g.ExpiresAt):
			return fmt.Errorf("renew moved expiresAt back, from %s to %s", g.ExpiresAt.Format(time.RFC3339Nano), r.ExpiresAt.Format(time.RFC3339Nano))
		}
	}
	l, err := b.get(ctx, res)
	if err != nil {
		return err
	}
	if !l.Held || l.FencingToken != g.FencingToken {
		return fmt.Errorf("after a renew GET shows held=%v fencingToken=%d, want the holder's %d", l.Held, l.FencingToken, g.FencingToken)
	}
	return nil
}

func checkFencing(ctx context.Context, b *battery) error {
	res := b.res("fencing")
	var last int64
	for i := range 4 {
		g, err := b.mustAcquire(ctx, res, fmt.Sprintf("conformance-%d", i), 30*time.Second)
		if err != nil {
			return err
		}
		if g.FencingToken <= last {
			return fmt.Errorf("grant %d of one resource got fencingToken %d, not above the previous grant's %d", i+1, g.FencingToken, last)
		}
		last = g.FencingToken
		if err := b.mustRelease(ctx, res, g.LockToken); err != nil {
			return err
		}
	}
	return nil
}

func checkExpiry(ctx context.Context, b *battery) error {
	res, ttl := b.res("expiry"), b.cfg.TTL
	called := time.Now()
	g, err := b.mustAcquire(ctx, res, "conformance-a", ttl)
	if err != nil {
		return err
	}
	wait := 20 * time.Second
	a, err := b.acquire(ctx, res, "conformance-b", 30*time.Second, wait)
	granted := time.Now()
	if err != nil {
		return err
	}
	if a.status == http.StatusConflict {
		return fmt.Errorf("a lock of ttl %s that nobody released was still held %s later (a waiter with timeout %s got lock_busy)", ttl, wait, wait)
	}
	w, err := a.wantGrant("a waiter for an expiring lock")
	if err != nil {
		return err
	}
	defer b.release(context.WithoutCancel(ctx), res, w.LockToken)
	if granted.Before(called.Add(ttl)) {
		return fmt.Errorf("a lock of ttl %s was granted to another client %s after it was asked for: before it could expire",
			ttl, granted.Sub(called).Round(time.Millisecond))
	}
	if w.FencingToken <= g.FencingToken {
		return fmt.Errorf("the grant after the expiry has fencingToken %d, not above the expired grant's %d", w.FencingToken, g.FencingToken)
	}
	for _, op := range []string{"release", "renew"} {
		var a answer
		if op == "release" {
			a, err = b.release(ctx, res, g.LockToken)
		} else {
			a, err = b.renew(ctx, res, g.LockToken, 0)
		}
		if err != nil {
			return err
		}
		if err := a.wantError(http.StatusConflict, lockserver.CodeNotHolder); err != nil {
			return fmt.Errorf("a %s with the expired token: %w", op, err)
		}
	}
	return nil
}

// waiter is a blocking acquire run in the background.
type waiter struct {
	name  string
	grant Grant
	err   error
	at    time.Time
}

// spawnWaiter starts a blocking acquire; wg is done when it answered (and,
// when granted, after holding for hold and releasing).
func (b *battery) spawnWaiter(ctx context.Context, wg *sync.WaitGroup, w *waiter, res string, timeout, hold time.Duration) {
	wg.Go(func() {
		a, err := b.acquire(ctx, res, w.name, 30*time.Second, timeout)
		w.at = time.Now()
		if err == nil {
			w.grant, err = a.wantGrant("a blocked acquire")
		}
		w.err = err
		if err != nil {
			return
		}
		t := time.NewTimer(hold)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		if rerr := b.mustRelease(context.WithoutCancel(ctx), res, w.grant.LockToken); rerr != nil && w.err == nil {
			w.err = rerr
		}
	})
}

// arrivalGap spaces requests that must arrive in order: the battery sees
// the service from outside and cannot ask whether a request was queued.
const arrivalGap = 500 * time.Millisecond

// pause waits d (or until ctx ends).
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func checkWake(ctx context.Context, b *battery) error {
	res := b.res("wake")
	g, err := b.mustAcquire(ctx, res, "conformance-a", 30*time.Second)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	w := &waiter{name: "conformance-b"}
	b.spawnWaiter(ctx, &wg, w, res, 20*time.Second, 0)
	pause(ctx, arrivalGap)
	released := time.Now()
	rerr := b.mustRelease(ctx, res, g.LockToken)
	wg.Wait()
	if rerr != nil {
		return rerr
	}
	if w.err != nil {
		return fmt.Errorf("an acquire blocked with timeout 20s, woken by a release: %w", w.err)
	}
	if took := w.at.Sub(released); took > 5*time.Second {
		return fmt.Errorf("a release woke a blocked acquire only %s later", took.Round(time.Millisecond))
	}
	return nil
}

func checkFIFO(ctx context.Context, b *battery) error {
	res := b.res("fifo")
	g, err := b.mustAcquire(ctx, res, "conformance-a", 30*time.Second)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	ws := []*waiter{{name: "conformance-b"}, {name: "conformance-c"}, {name: "conformance-d"}}
	for _, w := range ws {
		b.spawnWaiter(ctx, &wg, w, res, 20*time.Second, 50*time.Millisecond)
		pause(ctx, arrivalGap)
	}
	rerr := b.mustRelease(ctx, res, g.LockToken)
	wg.Wait()
	if rerr != nil {
		return rerr
	}
	for _, w := range ws {
		if w.err != nil {
			return fmt.Errorf("%s, queued behind a held lock: %w", w.name, w.err)
		}
	}
	for i := 1; i < len(ws); i++ {
		if ws[i].grant.FencingToken <= ws[i-1].grant.FencingToken {
			var order []string
			for _, w := range ws {
				order = append(order, fmt.Sprintf("%s (fencingToken %d)", w.name, w.grant.FencingToken))
			}
			return fmt.Errorf("waiters that arrived %s apart were not served in arrival order: %s", arrivalGap, strings.Join(order, ", "))
		}
	}
	return nil
}
