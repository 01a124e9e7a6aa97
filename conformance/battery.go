package conformance

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Config configures a run of the battery.
type Config struct {
	// BaseURL is the service under test, e.g. "http://127.0.0.1:7001".
	// Required.
	BaseURL string
	// HTTP sends the requests. Default: a client of its own (no timeout;
	// every request is bounded by RequestTimeout).
	HTTP *http.Client
	// Prefix starts every resource id the battery locks. Default
	// "conformance-" and 8 random hex digits.
	Prefix string
	// TTL is the ttl of the lock left to expire. Default 1s (etcd rounds
	// it up to its minimum).
	TTL time.Duration
	// RequestTimeout bounds each request (a blocking acquire included).
	// Default 30s.
	RequestTimeout time.Duration
	// Unavailable, when set, takes etcd's quorum away from the service and
	// returns how to give it back; the "unavailable" check needs it and is
	// skipped without it.
	Unavailable func(ctx context.Context) (restore func(context.Context) error, err error)
	// Only runs just these checks (by name; default all).
	Only []string
}

// Result of one check.
type Result string

// Results.
const (
	Pass Result = "pass"
	Fail Result = "fail"
	Skip Result = "skip"
)

// Check is the outcome of one named check.
type Check struct {
	Name    string        `json:"name"`
	About   string        `json:"about"`
	Result  Result        `json:"result"`
	Detail  string        `json:"detail,omitempty"` // why it failed or was skipped
	Elapsed time.Duration `json:"elapsedNs"`
	err     error
}

// Err is the error of a failed check (a *ProtocolError when an answer was
// not the documented JSON); nil otherwise.
func (c Check) Err() error { return c.err }

// Report is the outcome of the battery.
type Report struct {
	BaseURL string  `json:"baseURL"`
	Checks  []Check `json:"checks"`
}

// Pass reports whether no check failed.
func (r Report) Pass() bool {
	return !slices.ContainsFunc(r.Checks, func(c Check) bool { return c.Result == Fail })
}

// Count returns how many checks passed, failed and were skipped.
func (r Report) Count() (pass, fail, skip int) {
	for _, c := range r.Checks {
		switch c.Result {
		case Pass:
			pass++
		case Fail:
			fail++
		default:
			skip++
		}
	}
	return pass, fail, skip
}

// Protocol returns the first answer that was not the documented JSON, or
// nil.
func (r Report) Protocol() error {
	for _, c := range r.Checks {
		var pe *ProtocolError
		if errors.As(c.err, &pe) {
			return pe
		}
	}
	return nil
}

// errSkip marks a check that could not run.
var errSkip = errors.New("skipped")

// check is one entry of the battery.
type check struct {
	name, about string
	run         func(ctx context.Context, b *battery) error
}

// Names lists the battery's checks in the order they run.
func Names() []string {
	out := make([]string, len(checks))
	for i, c := range checks {
		out[i] = c.name
	}
	return out
}

// battery is one run: the client and the resources it uses.
type battery struct {
	cfg Config
	c   *client
	n   int // resources handed out
}

// res returns a fresh resource id.
func (b *battery) res(what string) string {
	b.n++
	return fmt.Sprintf("%s-%d-%s", b.cfg.Prefix, b.n, what)
}

// Run runs the battery (or Config.Only) against Config.BaseURL and
// returns every check's result. It never panics on what the service
// answers; a check that finds a problem fails with a detail that says what
// it sent and what came back.
func Run(ctx context.Context, cfg Config) Report {
	if cfg.HTTP == nil {
		tr := &http.Transport{MaxIdleConnsPerHost: 16}
		defer tr.CloseIdleConnections()
		cfg.HTTP = &http.Client{Transport: tr}
	}
	if cfg.Prefix == "" {
		b := make([]byte, 4)
		_, _ = crand.Read(b)
		cfg.Prefix = "conformance-" + hex.EncodeToString(b)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	b := &battery{cfg: cfg, c: &client{base: strings.TrimSuffix(cfg.BaseURL, "/"), hc: cfg.HTTP}}
	rep := Report{BaseURL: cfg.BaseURL}
	for _, ch := range checks {
		if len(cfg.Only) > 0 && !slices.Contains(cfg.Only, ch.name) {
			continue
		}
		start := time.Now()
		err := ch.run(ctx, b)
		c := Check{Name: ch.name, About: ch.about, Result: Pass, Elapsed: time.Since(start)}
		switch {
		case errors.Is(err, errSkip):
			c.Result, c.Detail = Skip, strings.TrimSuffix(err.Error(), ": "+errSkip.Error())
		case err != nil:
			c.Result, c.Detail, c.err = Fail, err.Error(), err
		}
		rep.Checks = append(rep.Checks, c)
		if ctx.Err() != nil {
			break
		}
	}
	return rep
}

// call bounds one request by RequestTimeout.
func (b *battery) call(ctx context.Context, f func(ctx context.Context) (answer, error)) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	return f(ctx)
}

// acquire sends an acquire and returns the answer.
func (b *battery) acquire(ctx context.Context, res, owner string, ttl, timeout time.Duration) (answer, error) {
	return b.call(ctx, func(ctx context.Context) (answer, error) {
		return b.c.post(ctx, "/locks/acquire", map[string]any{
			"resourceId": res, "ttl": ttl.Seconds(), "timeout": timeout.Seconds(), "clientId": owner})
	})
}

// mustAcquire acquires a free resource and returns its grant.
func (b *battery) mustAcquire(ctx context.Context, res, owner string, ttl time.Duration) (Grant, error) {
	a, err := b.acquire(ctx, res, owner, ttl, 0)
	if err != nil {
		return Grant{}, err
	}
	return a.wantGrant("an acquire of a free lock")
}

// said is the status and code of an answer: "409 lock_busy", "200".
func (a answer) said() string {
	if code, err := a.apiError(); err == nil {
		return fmt.Sprintf("%d %s", a.status, code)
	}
	return fmt.Sprint(a.status)
}

// wantGrant expects a 200 grant.
func (a answer) wantGrant(what string) (Grant, error) {
	if a.status != http.StatusOK {
		return Grant{}, fmt.Errorf("%s: %s answered %s, want 200 with a grant", what, a.req, a.said())
	}
	return a.grant()
}

// wantError expects the documented error answer with this status and code.
func (a answer) wantError(status int, code string) error {
	if a.status != status {
		return fmt.Errorf("%s answered %s, want %d %s", a.req, a.said(), status, code)
	}
	got, err := a.apiError()
	if err != nil {
		return err
	}
	if got != code {
		return fmt.Errorf("%s answered %d with code %q, want %q", a.req, a.status, got, code)
	}
	return nil
}

func (b *battery) release(ctx context.Context, res, token string) (answer, error) {
	return b.call(ctx, func(ctx context.Context) (answer, error) {
		return b.c.post(ctx, "/locks/release", map[string]any{"resourceId": res, "lockToken": token})
	})
}

// mustRelease releases a held lock: 200 {"success":true}.
func (b *battery) mustRelease(ctx context.Context, res, token string) error {
	a, err := b.release(ctx, res, token)
	if err != nil {
		return err
	}
	if a.status != http.StatusOK {
		return fmt.Errorf("the holder's release: %s answered %s, want 200", a.req, a.said())
	}
	f, err := a.fields()
	if err != nil {
		return err
	}
	if !f.boolean("success") && f.bad == "" {
		f.fail(`"success": false in a 200 answer`)
	}
	return f.err()
}

func (b *battery) renew(ctx context.Context, res, token string, ttl time.Duration) (answer, error) {
	body := map[string]any{"resourceId": res, "lockToken": token}
	if ttl > 0 {
		body["ttl"] = ttl.Seconds()
	}
	return b.call(ctx, func(ctx context.Context) (answer, error) { return b.c.post(ctx, "/locks/renew", body) })
}

// get reads a lock.
func (b *battery) get(ctx context.Context, res string) (Lock, error) {
	a, err := b.call(ctx, func(ctx context.Context) (answer, error) {
		return b.c.do(ctx, http.MethodGet, "/locks/"+res, "", nil)
	})
	if err != nil {
		return Lock{}, err
	}
	if a.status != http.StatusOK {
		return Lock{}, fmt.Errorf("%s answered %s, want 200", a.req, a.said())
	}
	l, err := a.lock()
	if err == nil && l.ResourceID != res {
		err = a.protocol("a resourceId of %q (want %q)", l.ResourceID, res)
	}
	return l, err
}

// wantFree expects GET to show the lock not held.
func (b *battery) wantFree(ctx context.Context, res, why string) error {
	l, err := b.get(ctx, res)
	if err != nil {
		return err
	}
	if l.Held {
		return fmt.Errorf("%s: GET /locks/%s shows it held by %q", why, res, l.OwnerID)
	}
	return nil
}
