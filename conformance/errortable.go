package conformance

// The checks of README's error table, and of the answers without an etcd
// quorum.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/locksim/locksim/lockserver"
)

// badBody is an acquire with one bad body ("%s" becomes a fresh resource).
func badBody(body, code string) func(context.Context, *battery) error {
	return badBodies(code, body)
}

// badBodies sends each body as an acquire and expects 400 code, and that
// nothing changed: the resource is not held afterwards.
func badBodies(code string, bodies ...string) func(context.Context, *battery) error {
	return func(ctx context.Context, b *battery) error {
		res := b.res("bad")
		for _, body := range bodies {
			if strings.Contains(body, "%s") {
				body = fmt.Sprintf(body, res)
			}
			a, err := b.call(ctx, func(ctx context.Context) (answer, error) {
				return b.c.do(ctx, http.MethodPost, "/locks/acquire", "application/json", []byte(body))
			})
			if err != nil {
				return err
			}
			if err := a.wantError(http.StatusBadRequest, code); err != nil {
				return fmt.Errorf("body %s: %w", quoteBody(body), err)
			}
		}
		return b.wantFree(ctx, res, "a rejected acquire must change nothing")
	}
}

func checkNotFound(ctx context.Context, b *battery) error {
	for _, req := range [][2]string{{http.MethodGet, "/no/such/path"}, {http.MethodPost, "/locks-acquire"}} {
		a, err := b.call(ctx, func(ctx context.Context) (answer, error) {
			return b.c.do(ctx, req[0], req[1], "application/json", []byte(`{}`))
		})
		if err != nil {
			return err
		}
		if err := a.wantError(http.StatusNotFound, lockserver.CodeNotFound); err != nil {
			return err
		}
	}
	return nil
}

func checkMethod(ctx context.Context, b *battery) error {
	for _, req := range [][2]string{{http.MethodDelete, "/locks/acquire"}, {http.MethodPut, "/locks/release"}, {http.MethodPost, "/health"}} {
		a, err := b.call(ctx, func(ctx context.Context) (answer, error) {
			return b.c.do(ctx, req[0], req[1], "application/json", []byte(`{}`))
		})
		if err != nil {
			return err
		}
		if err := a.wantError(http.StatusMethodNotAllowed, lockserver.CodeMethodNotAllowed); err != nil {
			return err
		}
		if a.header.Get("Allow") == "" {
			return fmt.Errorf("%s answered 405 without an Allow header", a.req)
		}
	}
	return nil
}

func checkTooLarge(ctx context.Context, b *battery) error {
	res := b.res("large")
	body := fmt.Sprintf(`{"resourceId":"%s","ttl":5,"clientId":"%s"}`, res, strings.Repeat("x", 65<<10))
	for _, chunked := range []bool{false, true} {
		a, err := b.call(ctx, func(ctx context.Context) (answer, error) {
			var r io.Reader = bytes.NewReader([]byte(body))
			if chunked {
				r = io.MultiReader(r) // no length known: sent chunked
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.c.base+"/locks/acquire", r)
			if err != nil {
				return answer{}, err
			}
			req.Header.Set("Content-Type", "application/json")
			return b.c.send(req)
		})
		if err != nil {
			return err
		}
		if err := a.wantError(http.StatusRequestEntityTooLarge, lockserver.CodeBodyTooLarge); err != nil {
			if chunked {
				return fmt.Errorf("sent chunked: %w", err)
			}
			return err
		}
	}
	return b.wantFree(ctx, res, "a rejected acquire must change nothing")
}

func checkMediaType(ctx context.Context, b *battery) error {
	res := b.res("media")
	body := []byte(fmt.Sprintf(`{"resourceId":"%s","ttl":5}`, res))
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded"} {
		a, err := b.call(ctx, func(ctx context.Context) (answer, error) {
			return b.c.do(ctx, http.MethodPost, "/locks/acquire", ct, body)
		})
		if err != nil {
			return err
		}
		if err := a.wantError(http.StatusUnsupportedMediaType, lockserver.CodeUnsupportedMediaType); err != nil {
			return fmt.Errorf("Content-Type %s: %w", ct, err)
		}
	}
	return b.wantFree(ctx, res, "a rejected acquire must change nothing")
}

func checkUnavailable(ctx context.Context, b *battery) error {
	if b.cfg.Unavailable == nil {
		return fmt.Errorf("needs a way to take etcd's quorum away (locksim grade has one): %w", errSkip)
	}
	restore, err := b.cfg.Unavailable(ctx)
	if err != nil {
		return fmt.Errorf("taking the quorum away: %w", err)
	}
	err = b.whileUnavailable(ctx)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if rerr := restore(rctx); rerr != nil && err == nil {
		err = fmt.Errorf("giving the quorum back: %w", rerr)
	}
	if err != nil {
		return err
	}
	return b.healthIs(rctx, http.StatusOK, 30*time.Second, "after the quorum came back")
}

// whileUnavailable checks the answers without a quorum.
func (b *battery) whileUnavailable(ctx context.Context) error {
	if err := b.healthIs(ctx, http.StatusServiceUnavailable, 20*time.Second, "without an etcd quorum"); err != nil {
		return err
	}
	a, err := b.acquire(ctx, b.res("unavailable"), "conformance-a", 5*time.Second, 0)
	if err != nil {
		return fmt.Errorf("an acquire without an etcd quorum got no answer: %w", err)
	}
	switch a.status {
	case http.StatusServiceUnavailable:
		if err := a.wantError(http.StatusServiceUnavailable, lockserver.CodeUnavailable); err != nil {
			return err
		}
		if a.header.Get("Retry-After") == "" {
			return fmt.Errorf("%s answered 503 without a Retry-After header", a.req)
		}
		return nil
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return a.wantError(a.status, lockserver.CodeOutcomeUnknown)
	}
	return fmt.Errorf("an acquire without an etcd quorum answered %s, want 503 unavailable or 502/504 outcome_unknown", a.said())
}

// healthIs polls /health until it answers status, for at most bound.
func (b *battery) healthIs(ctx context.Context, status int, bound time.Duration, why string) error {
	deadline := time.Now().Add(bound)
	var last string
	for {
		a, err := b.call(ctx, func(ctx context.Context) (answer, error) {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return b.c.do(cctx, http.MethodGet, "/health", "", nil)
		})
		if err == nil && a.status == status {
			return nil
		}
		last = fmt.Sprint(a.status)
		if err != nil {
			last = err.Error()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s, GET /health should answer %d: it still answered %s after %s", why, status, last, bound)
		}
		pause(ctx, 200*time.Millisecond)
	}
}
