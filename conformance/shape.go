package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// ErrNotTheAPI is wrapped by every *ProtocolError.
var ErrNotTheAPI = errors.New("conformance: not the documented JSON")

// ProtocolError is an answer that is not the documented JSON: the request,
// the status, what was wrong and the start of the body.
type ProtocolError struct {
	Request string // "POST /locks/acquire"
	Status  int
	Problem string
	Body    string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("%s answered %d with %s: %s", e.Request, e.Status, e.Problem, quoteBody(e.Body))
}

func (e *ProtocolError) Unwrap() error { return ErrNotTheAPI }

func quoteBody(b string) string {
	b = strings.TrimSpace(b)
	if len(b) > 120 {
		b = b[:120] + "..."
	}
	if b == "" {
		return "an empty body"
	}
	return fmt.Sprintf("%q", b)
}

// answer is one HTTP answer of the service.
type answer struct {
	req    string // "POST /locks/acquire"
	status int
	header http.Header
	body   []byte
}

// protocol returns the ProtocolError of this answer.
func (a answer) protocol(format string, args ...any) error {
	return &ProtocolError{Request: a.req, Status: a.status, Problem: fmt.Sprintf(format, args...), Body: string(a.body)}
}

// object decodes the body as one JSON object, keeping each field raw.
func (a answer) object() (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(a.body))
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, a.protocol("a body that is not a JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, a.protocol("more than one JSON value")
	}
	return m, nil
}

// fields reads typed fields of a JSON object: each getter records the
// first problem, which err returns as a ProtocolError.
type fields struct {
	a   answer
	m   map[string]json.RawMessage
	bad string
}

func (a answer) fields() (*fields, error) {
	m, err := a.object()
	if err != nil {
		return nil, err
	}
	return &fields{a: a, m: m}, nil
}

func (f *fields) fail(format string, args ...any) {
	if f.bad == "" {
		f.bad = fmt.Sprintf(format, args...)
	}
}

func (f *fields) err() error {
	if f.bad == "" {
		return nil
	}
	return f.a.protocol("%s", f.bad)
}

func (f *fields) has(name string) bool {
	raw, ok := f.m[name]
	return ok && string(raw) != "null"
}

func (f *fields) str(name string, required bool) string {
	if !f.has(name) {
		if required {
			f.fail("no %q", name)
		}
		return ""
	}
	var s string
	if json.Unmarshal(f.m[name], &s) != nil {
		f.fail("%q that is not a string", name)
	}
	if required && s == "" {
		f.fail("an empty %q", name)
	}
	return s
}

func (f *fields) boolean(name string) bool {
	var b bool
	if !f.has(name) || json.Unmarshal(f.m[name], &b) != nil {
		f.fail("no boolean %q", name)
	}
	return b
}

func (f *fields) integer(name string, required bool) int64 {
	if !f.has(name) {
		if required {
			f.fail("no %q", name)
		}
		return 0
	}
	var n int64
	if json.Unmarshal(f.m[name], &n) != nil {
		f.fail("%q that is not an integer", name)
	}
	return n
}

func (f *fields) number(name string) float64 {
	if !f.has(name) {
		return 0
	}
	var n float64
	if json.Unmarshal(f.m[name], &n) != nil {
		f.fail("%q that is not a number", name)
	}
	return n
}

func (f *fields) time(name string, required bool) time.Time {
	s := f.str(name, required)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		f.fail("%q that is not an RFC 3339 time (%q)", name, s)
	}
	return t
}

// Grant is the documented answer of a successful acquire or renew.
type Grant struct {
	LockToken    string
	FencingToken int64
	ExpiresAt    time.Time
	TTL          time.Duration // 0 when the answer has no "ttl"
}

// grant decodes {"success":true,"lockToken","fencingToken","expiresAt"[,"ttl"]}.
func (a answer) grant() (Grant, error) {
	f, err := a.fields()
	if err != nil {
		return Grant{}, err
	}
	if !f.boolean("success") {
		f.fail(`"success": false in a 200 answer`)
	}
	g := Grant{LockToken: f.str("lockToken", true), FencingToken: f.integer("fencingToken", true), ExpiresAt: f.time("expiresAt", true)}
	g.TTL = time.Duration(f.number("ttl") * float64(time.Second))
	if g.FencingToken <= 0 && f.bad == "" {
		f.fail("a fencingToken of %d (want a positive integer)", g.FencingToken)
	}
	return g, f.err()
}

// apiError decodes {"success":false,"error":"...","code":"..."} and returns the code.
func (a answer) apiError() (string, error) {
	f, err := a.fields()
	if err != nil {
		return "", err
	}
	if f.boolean("success") {
		f.fail(`"success": true in an error answer`)
	}
	f.str("error", true)
	code := f.str("code", true)
	return code, f.err()
}

// Lock is the documented answer of GET /locks/{resourceId}.
type Lock struct {
	ResourceID   string
	Held         bool
	OwnerID      string
	FencingToken int64
	ExpiresAt    time.Time
}

// lock decodes {"resourceId","held"[,"ownerId","fencingToken","expiresAt"]}.
func (a answer) lock() (Lock, error) {
	f, err := a.fields()
	if err != nil {
		return Lock{}, err
	}
	l := Lock{ResourceID: f.str("resourceId", true), Held: f.boolean("held")}
	if l.Held {
		l.OwnerID = f.str("ownerId", false)
		l.FencingToken = f.integer("fencingToken", true)
		l.ExpiresAt = f.time("expiresAt", true)
	}
	return l, f.err()
}

// client sends requests to one base URL.
type client struct {
	base string
	hc   *http.Client
}

// do sends one request with a JSON (or the given) content type.
func (c *client) do(ctx context.Context, method, path, contentType string, body []byte) (answer, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return answer{req: method + " " + path}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return c.send(req)
}

// send sends req and reads the answer (at most 1 MiB of it).
func (c *client) send(req *http.Request) (answer, error) {
	a := answer{req: req.Method + " " + req.URL.Path}
	resp, err := c.hc.Do(req)
	if err != nil {
		return a, fmt.Errorf("%s: %w", a.req, err)
	}
	defer resp.Body.Close()
	a.status, a.header = resp.StatusCode, resp.Header
	a.body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return a, fmt.Errorf("%s: reading the answer: %w", a.req, err)
	}
	return a, nil
}

// post sends v as JSON.
func (c *client) post(ctx context.Context, path string, v any) (answer, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return answer{}, err
	}
	return c.do(ctx, http.MethodPost, path, "application/json", b)
}

// Probe sends GET /locks/{resourceId} for a resource nobody uses and
// checks that the answer is the documented JSON. It returns a
// *ProtocolError when it is not, another error when no answer came.
func Probe(ctx context.Context, hc *http.Client, baseURL string) error {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := &client{base: strings.TrimSuffix(baseURL, "/"), hc: hc}
	a, err := c.do(ctx, http.MethodGet, "/locks/locksim-probe", "", nil)
	if err != nil {
		return err
	}
	if a.status != http.StatusOK {
		code, err := a.apiError()
		if err != nil {
			return err
		}
		return fmt.Errorf("%s answered %d %s", a.req, a.status, code)
	}
	l, err := a.lock()
	if err != nil {
		return err
	}
	if l.ResourceID != "locksim-probe" {
		return a.protocol("a resourceId of %q (want %q)", l.ResourceID, "locksim-probe")
	}
	return nil
}
