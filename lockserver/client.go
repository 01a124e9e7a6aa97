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
	"slices"
	"strings"
	"sync"
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

// body builds a request body: a flat JSON object of the given members,
// written by hand (no reflection: the client is on every cycle's path).
type body []byte

func (b body) str(name, v string) body {
	b = b.sep(name)
	return appendJSONString(b, v)
}

func (b body) num(name string, v float64) body {
	b = b.sep(name)
	return appendJSONFloat(b, v)
}

func (b body) sep(name string) body {
	if len(b) == 0 {
		b = append(b, '{')
	} else {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

func (b body) end() []byte { return append(b, '}') }

// Acquire asks for resourceID for ttl, waiting up to timeout (0 = try once).
func (c *Client) Acquire(ctx context.Context, resourceID string, ttl, timeout time.Duration) (Grant, error) {
	b := body(make([]byte, 0, 128)).str(fResourceID, resourceID).num(fTTL, ttl.Seconds()).num(fTimeout, timeout.Seconds())
	if c.ClientID != "" {
		b = b.str(fClientID, c.ClientID)
	}
	var out grantBody
	if err := c.do(ctx, http.MethodPost, "/locks/acquire", b.end(), out.decode, true); err != nil {
		return Grant{}, err
	}
	return out.toGrant()
}

// Release releases the lock held with lockToken.
func (c *Client) Release(ctx context.Context, resourceID, lockToken string) error {
	b := body(make([]byte, 0, 128)).str(fResourceID, resourceID).str(fLockToken, lockToken)
	return c.do(ctx, http.MethodPost, "/locks/release", b.end(), nil, true)
}

// Renew makes the lock last ttl from now (rounded up like an acquire's;
// ttl 0 sends none: the TTL in effect), keeping its fencing token and
// lockToken. A renew never shortens a lock: Grant.TTL and ExpiresAt report
// what the lock has now, at least ttl.
func (c *Client) Renew(ctx context.Context, resourceID, lockToken string, ttl time.Duration) (Grant, error) {
	b := body(make([]byte, 0, 128)).str(fResourceID, resourceID).str(fLockToken, lockToken)
	if ttl > 0 {
		b = b.num(fTTL, ttl.Seconds())
	}
	var out grantBody
	if err := c.do(ctx, http.MethodPost, "/locks/renew", b.end(), out.decode, true); err != nil {
		return Grant{}, err
	}
	return out.toGrant()
}

// Get reads a lock linearizably.
func (c *Client) Get(ctx context.Context, resourceID string) (LockInfo, error) {
	var out lockBody
	decode := func(raw []byte) error { return json.Unmarshal(raw, &out) }
	if err := c.do(ctx, http.MethodGet, "/locks/"+(&url.URL{Path: resourceID}).EscapedPath(), nil, decode, false); err != nil {
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

// decode decodes a grant answer: the fast path when it is a plain flat
// object, else encoding/json (which ignores unknown fields and matches
// names case-insensitively: the fast path leaves such bodies to it).
func (g *grantBody) decode(raw []byte) error {
	var buf [maxMembers]jsonMember
	if ms, ok := scanFlatObject(raw, &buf); ok && g.fast(ms) {
		return nil
	}
	*g = grantBody{}
	return json.Unmarshal(raw, g)
}

func (g *grantBody) fast(ms []jsonMember) bool {
	known := [...]string{"success", "lockToken", "fencingToken", "expiresAt", fTTL}
	for _, m := range ms {
		ok := true
		switch {
		case m.kind == 'b' && m.is("success"):
			g.Success = string(m.raw) == "true"
		case m.kind == 's' && m.is("lockToken"):
			g.LockToken = m.str()
		case m.kind == 'n' && m.is("fencingToken"):
			g.FencingToken, ok = m.int()
		case m.kind == 's' && m.is("expiresAt"):
			g.ExpiresAt = m.str()
		case m.kind == 'n' && m.is(fTTL):
			g.TTL, ok = m.float()
		default:
			ok = !slices.ContainsFunc(known[:], m.like) // an unknown member is ignored
		}
		if !ok {
			return false
		}
	}
	return true
}

func (g grantBody) toGrant() (Grant, error) {
	t, err := time.Parse(time.RFC3339Nano, g.ExpiresAt)
	if err != nil {
		// The request took effect but the answer is unusable.
		return Grant{}, fmt.Errorf("%w: bad expiresAt %q", ErrOutcomeUnknown, g.ExpiresAt)
	}
	return Grant{LockToken: g.LockToken, FencingToken: g.FencingToken, ExpiresAt: t, TTL: seconds(g.TTL)}, nil
}

// Header values the client sends, shared (net/http never changes them).
var (
	jsonHeader  = []string{"application/json"}
	acceptsJSON = []string{"application/json"}
)

// answerBuffers are reused buffers for answers (decode copies what it keeps).
var answerBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// do sends one request with body in (nil: none) and decodes a 2xx answer
// with decode (nil: ignore it). write says whether the request can change
// state; for reads every transport failure is ErrUnavailable.
func (c *Client) do(ctx context.Context, method, path string, in []byte, decode func([]byte) error, write bool) error {
	var reqBody io.Reader
	if in != nil {
		reqBody = bytes.NewReader(in)
	}
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		if i.Err == nil {
			wrote.Store(true)
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, strings.TrimSuffix(c.BaseURL, "/")+path, reqBody)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if in != nil {
		req.Header["Content-Type"] = jsonHeader
	}
	req.Header["Accept"] = acceptsJSON
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
	bp := answerBuffers.Get().(*[]byte)
	defer answerBuffers.Put(bp)
	raw, err := readAll((*bp)[:0], resp.Body, 1<<20)
	*bp = raw
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
	if decode == nil {
		return nil
	}
	if err := decode(raw); err != nil {
		if write {
			return fmt.Errorf("%w: undecodable answer: %w", ErrOutcomeUnknown, err)
		}
		return fmt.Errorf("%w: undecodable answer: %w", ErrUnavailable, err)
	}
	return nil
}

// readAll appends what r has, up to limit bytes, to b.
func readAll(b []byte, r io.Reader, limit int) ([]byte, error) {
	for len(b) < limit {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):min(cap(b), limit)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}
