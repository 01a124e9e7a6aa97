package lockserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Client is the Go client of the lock API (a lock server or the balancer).
// Its zero value plus BaseURL is usable; it is safe for concurrent use.
//
// Errors are classified for honest histories: errors.Is(err, ErrUnavailable)
// means the request cannot have taken effect (never written to the wire, or
// answered 503/429); errors.Is(err, ErrOutcomeUnknown) means it may have (written
// but no answer: timeout, reset, cancelled mid-flight; or 504/502); ErrBusy,
// ErrNotHeld and ErrBadRequest mean it was rejected and changed nothing.
type Client struct {
	// BaseURL is e.g. "http://127.0.0.1:8080" (no trailing path).
	BaseURL string
	// HTTP defaults to a shared client whose Transport keeps up to 256 idle
	// connections per host.
	HTTP *http.Client
	// ClientID is sent as clientId on acquire (the lock's ownerId).
	ClientID string
	// APIKey, when set, is sent as "Authorization: Bearer <APIKey>".
	APIKey string
}

// Grant is a held lock: the answer of Acquire and Renew.
type Grant struct {
	LockToken    string
	FencingToken int64
	ExpiresAt    time.Time
	TTL          time.Duration // the effective TTL: granted (rounded up), or for a renew at least the one asked
}

// LockInfo is the answer of Get.
type LockInfo struct {
	ResourceID   string
	Held         bool
	OwnerID      string
	FencingToken int64
	ExpiresAt    time.Time
	Waiters      int64 // blocked acquires queued for the lock
}

// Error is a non-2xx answer. Unwrap returns the matching sentinel error.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("lockserver: HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("lockserver: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Unwrap maps the code (or, without one, the status) to a sentinel.
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeLockBusy:
		return ErrBusy
	case CodeNotHolder:
		return ErrNotHeld
	case CodeOutcomeUnknown:
		return ErrOutcomeUnknown
	case CodeUnavailable:
		return ErrUnavailable
	}
	switch {
	case e.Status == http.StatusServiceUnavailable, e.Status == http.StatusTooManyRequests:
		return ErrUnavailable
	case e.Status >= 500:
		return ErrOutcomeUnknown // 502, 504, 500: the request may have reached etcd
	case e.Status == http.StatusConflict:
		return ErrBusy
	default:
		return ErrBadRequest
	}
}

var defaultHTTP = &http.Client{Transport: &http.Transport{
	Proxy:                 nil,
	MaxIdleConns:          1024,
	MaxIdleConnsPerHost:   256,
	IdleConnTimeout:       90 * time.Second,
	ResponseHeaderTimeout: 0, // blocking acquires may take up to their timeout
	ExpectContinueTimeout: time.Second,
}}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

// secs encodes a duration as JSON seconds.
func secs(d time.Duration) float64 { return d.Seconds() }

// Acquire asks for resourceID for ttl, waiting up to timeout (0 = try once).
func (c *Client) Acquire(ctx context.Context, resourceID string, ttl, timeout time.Duration) (Grant, error) {
	in := map[string]any{"resourceId": resourceID, "ttl": secs(ttl), "timeout": secs(timeout)}
	if c.ClientID != "" {
		in["clientId"] = c.ClientID
	}
	var out grantBody
	if err := c.do(ctx, http.MethodPost, "/locks/acquire", in, &out, true); err != nil {
		return Grant{}, err
	}
	return out.toGrant()
}

// Release releases the lock held with lockToken.
func (c *Client) Release(ctx context.Context, resourceID, lockToken string) error {
	in := map[string]any{"resourceId": resourceID, "lockToken": lockToken}
	return c.do(ctx, http.MethodPost, "/locks/release", in, nil, true)
}

// Renew makes the lock last ttl from now (rounded up like an acquire's;
// ttl 0 sends none: the TTL in effect), keeping its fencing token and
// lockToken. A renew never shortens a lock: Grant.TTL and ExpiresAt report
// what the lock has now, at least ttl.
func (c *Client) Renew(ctx context.Context, resourceID, lockToken string, ttl time.Duration) (Grant, error) {
	in := map[string]any{"resourceId": resourceID, "lockToken": lockToken}
	if ttl > 0 {
		in["ttl"] = secs(ttl)
	}
	var out grantBody
	if err := c.do(ctx, http.MethodPost, "/locks/renew", in, &out, true); err != nil {
		return Grant{}, err
	}
	return out.toGrant()
}

// Get reads a lock linearizably.
func (c *Client) Get(ctx context.Context, resourceID string) (LockInfo, error) {
	var out lockBody
	if err := c.do(ctx, http.MethodGet, "/locks/"+(&url.URL{Path: resourceID}).EscapedPath(), nil, &out, false); err != nil {
		return LockInfo{}, err
	}
	info := LockInfo{ResourceID: out.ResourceID, Held: out.Held, OwnerID: out.OwnerID, FencingToken: out.FencingToken, Waiters: out.Waiters}
	if out.ExpiresAt != "" {
		t, err := time.Parse(time.RFC3339Nano, out.ExpiresAt)
		if err != nil {
			return LockInfo{}, fmt.Errorf("%w: bad expiresAt %q", ErrUnavailable, out.ExpiresAt)
		}
		info.ExpiresAt = t
	}
	return info, nil
}

// Health returns nil when the server answers 200 to GET /health.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/health", nil, nil, false)
}

func (g grantBody) toGrant() (Grant, error) {
	t, err := time.Parse(time.RFC3339Nano, g.ExpiresAt)
	if err != nil {
		// The request took effect but the answer is unusable.
		return Grant{}, fmt.Errorf("%w: bad expiresAt %q", ErrOutcomeUnknown, g.ExpiresAt)
	}
	return Grant{LockToken: g.LockToken, FencingToken: g.FencingToken, ExpiresAt: t, TTL: seconds(g.TTL)}, nil
}

// do sends one request. write says whether the request can change state; for
// reads every transport failure is ErrUnavailable.
func (c *Client) do(ctx context.Context, method, path string, in, out any, write bool) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		body = bytes.NewReader(b)
	}
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		if i.Err == nil {
			wrote.Store(true)
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, strings.TrimSuffix(c.BaseURL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		if write && wrote.Load() {
			return fmt.Errorf("%w: %s %s: %w", ErrOutcomeUnknown, method, path, err)
		}
		return fmt.Errorf("%w: %s %s: %w", ErrUnavailable, method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		if write && resp.StatusCode < 300 {
			return fmt.Errorf("%w: reading answer: %w", ErrOutcomeUnknown, err)
		}
		if resp.StatusCode < 300 {
			return fmt.Errorf("%w: reading answer: %w", ErrUnavailable, err)
		}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var eb errorBody
		e := &Error{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
		if json.Unmarshal(raw, &eb) == nil && eb.Code != "" {
			e.Code, e.Message = eb.Code, eb.Error
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		if write {
			return fmt.Errorf("%w: undecodable answer: %w", ErrOutcomeUnknown, err)
		}
		return fmt.Errorf("%w: undecodable answer: %w", ErrUnavailable, err)
	}
	return nil
}
