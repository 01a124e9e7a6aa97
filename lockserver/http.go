package lockserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// routes builds the HTTP API. Routing is by hand so that 404 and
// 405 answers are JSON like every other error.
func (s *Server) routes() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.track() {
			w.Header().Set("Connection", "close")
			s.writeError(w, r, ErrUnavailable)
			return
		}
		defer s.inflight.Done()
		s.stats.requests.Add(1)
		// Every etcd call of the request requires a leader: mark the
		// request's context once rather than each call's (see etcdCtx).
		s.route(w, r.WithContext(withLeader(r.Context())))
	})
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch path {
	case "/health":
		if s.allow(w, r, http.MethodGet) {
			s.handleHealth(w, r)
		}
		return
	case "/metrics":
		if s.allow(w, r, http.MethodGet) {
			s.handleMetrics(w, r)
		}
		return
	case "/locks/acquire", "/locks/release", "/locks/renew":
		// GET of these paths reads a lock of that name, as GET /locks/{id} does.
		switch r.Method {
		case http.MethodPost:
			if !s.admit(w, r) || !s.jsonBody(w, r) {
				return
			}
			switch path {
			case "/locks/acquire":
				s.handleAcquire(w, r)
			case "/locks/release":
				s.handleRelease(w, r)
			default:
				s.handleRenew(w, r)
			}
		case http.MethodGet, http.MethodHead:
			if s.admit(w, r) {
				s.handleGet(w, r, strings.TrimPrefix(path, "/locks/"))
			}
		default:
			s.methodNotAllowed(w, r, "GET, HEAD, POST")
		}
		return
	}
	if id, ok := strings.CutPrefix(path, "/locks/"); ok {
		if s.allow(w, r, http.MethodGet) && s.admit(w, r) {
			s.handleGet(w, r, id)
		}
		return
	}
	s.writeError(w, r, &requestError{status: http.StatusNotFound, code: CodeNotFound, msg: fmt.Sprintf("no such endpoint: %s %s", r.Method, path)})
}

// admit applies auth (when Config.APIKeys is set) and the rate limit.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool {
	if len(s.cfg.APIKeys) > 0 {
		if _, ok := s.keyClient(r); !ok {
			s.stats.rejected.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="locksim"`)
			s.writeError(w, r, &requestError{status: http.StatusUnauthorized, code: CodeUnauthorized,
				msg: "missing or invalid API key (Authorization: Bearer <key>)"})
			return false
		}
	}
	if s.limiter != nil && !s.limiter.AllowN(s.cfg.Now(), 1) {
		s.stats.rejected.Add(1)
		w.Header().Set("Retry-After", "1")
		s.writeError(w, r, &requestError{status: http.StatusTooManyRequests, code: CodeRateLimited,
			msg: "rate limit exceeded; retry later"})
		return false
	}
	return true
}

// keyClient returns the client id of the request's bearer key.
func (s *Server) keyClient(r *http.Request) (string, bool) {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", false
	}
	id, ok := s.cfg.APIKeys[strings.TrimSpace(key)]
	return id, ok
}

// allow accepts method (and HEAD for GET) or answers 405.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method || (method == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	allowed := method
	if method == http.MethodGet {
		allowed = "GET, HEAD"
	}
	s.methodNotAllowed(w, r, allowed)
	return false
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed string) {
	w.Header().Set("Allow", allowed)
	s.writeError(w, r, &requestError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
		msg: fmt.Sprintf("method %s is not allowed here (allowed: %s)", r.Method, allowed)})
}

// jsonBody checks the Content-Type (415) and limits the body to 64 KiB.
func (s *Server) jsonBody(w http.ResponseWriter, r *http.Request) bool {
	if !isJSON(r.Header.Get("Content-Type")) {
		s.writeError(w, r, &requestError{status: http.StatusUnsupportedMediaType, code: CodeUnsupportedMediaType,
			msg: "Content-Type must be application/json"})
		return false
	}
	if r.ContentLength < 0 || r.ContentLength > maxBodyBytes {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes) // chunked, or too large
	}
	return true
}

// isJSON reports whether a Content-Type is application/json (any
// parameters); the usual spellings are recognized without parsing.
func isJSON(ct string) bool {
	switch ct {
	case "application/json", "application/json; charset=utf-8":
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// bodyBuffers are reused request body buffers (bodies are small, and every
// field is copied out of them while they are parsed).
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// readBody reads the limited body into a pooled buffer, which the caller
// gives back with done; a body over the limit is a 413.
func readBody(r *http.Request) (body []byte, done func(), err error) {
	if r.ContentLength > maxBodyBytes {
		return nil, func() {}, errBodyTooLarge()
	}
	bp := bodyBuffers.Get().(*[]byte)
	done = func() { bodyBuffers.Put(bp) }
	b := (*bp)[:0]
	if n := int(r.ContentLength); n > cap(b) {
		b = make([]byte, 0, n)
	}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, rerr := r.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			var mbe *http.MaxBytesError
			if errors.As(rerr, &mbe) {
				return nil, done, errBodyTooLarge()
			}
			return nil, done, badRequest(CodeMalformedJSON, "cannot read request body: "+rerr.Error())
		}
	}
	*bp = b
	return b, done, nil
}

func errBodyTooLarge() error {
	return &requestError{status: http.StatusRequestEntityTooLarge, code: CodeBodyTooLarge,
		msg: fmt.Sprintf("request body is larger than %d bytes", maxBodyBytes)}
}

func (s *Server) limits() limits { return limits{MaxTTL: s.cfg.MaxTTL, MaxTimeout: s.cfg.MaxTimeout} }

// grantBody is the 200 answer of acquire and renew.
type grantBody struct {
	Success      bool    `json:"success"`
	LockToken    string  `json:"lockToken"`
	FencingToken int64   `json:"fencingToken"`
	ExpiresAt    string  `json:"expiresAt"`
	TTL          float64 `json:"ttl"`
}

// appendGrant appends g's 200 answer, as encoding/json would write grantBody.
func appendGrant(b []byte, g grant) []byte {
	b = append(b, `{"success":true,"lockToken":`...)
	b = appendJSONString(b, g.Token)
	b = append(b, `,"fencingToken":`...)
	b = strconv.AppendInt(b, g.Fencing, 10)
	b = append(b, `,"expiresAt":"`...)
	b = g.ExpiresAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","ttl":`...)
	b = appendJSONFloat(b, g.TTL.Seconds())
	return append(b, "}\n"...)
}

// releasedBody is the 200 answer of release.
var releasedBody = []byte("{\"success\":true}\n")

// decodeRequest is the prologue every POST handler shares: read the limited
// body, parse and validate it, and check that the etcd client exists. On
// failure it answers the error itself and reports false.
func decodeRequest[T any](s *Server, w http.ResponseWriter, r *http.Request, parse func([]byte, limits) (T, error)) (T, bool) {
	body, done, err := readBody(r)
	var req T
	if err == nil {
		req, err = parse(body, s.limits())
	}
	done()
	if err == nil && s.kv() == nil {
		err = ErrUnavailable
	}
	if err != nil {
		s.writeError(w, r, err)
		return req, false
	}
	return req, true
}

// answerGrant writes g with 200, or err.
func (s *Server) answerGrant(w http.ResponseWriter, r *http.Request, g grant, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	bp := bodyBuffers.Get().(*[]byte)
	*bp = appendGrant((*bp)[:0], g)
	s.writeBody(w, r, http.StatusOK, *bp)
	bodyBuffers.Put(bp)
}

func (s *Server) handleAcquire(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeRequest(s, w, r, func(body []byte, lim limits) (acquireRequest, error) {
		req, err := parseAcquire(body, lim)
		if err != nil {
			return req, err
		}
		return s.withOwner(r, req)
	})
	if !ok {
		return
	}
	start := time.Now()
	g, err := s.acquire(r.Context(), req)
	s.observeAcquire(start, err)
	switch {
	case err == nil:
		s.stats.acquireOK.Add(1)
	case errors.Is(err, ErrBusy):
		s.stats.acquireBusy.Add(1)
	case errors.Is(err, ErrOutcomeUnknown):
		s.stats.acquireUnknown.Add(1)
	case errors.Is(err, ErrUnavailable):
		s.stats.acquireUnavailable.Add(1)
	}
	if s.debug(r) {
		s.log.Debug("acquire", "resource", req.ResourceID, "client", req.ClientID, "fencing", g.Fencing, "err", err)
	}
	s.answerGrant(w, r, g, err)
}

func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeRequest(s, w, r, parseRelease)
	if !ok {
		return
	}
	err := s.release(r.Context(), req)
	s.countHolderOp(&s.stats.releases, &s.stats.releaseNotHolder, err)
	if s.debug(r) {
		s.log.Debug("release", "resource", req.ResourceID, "err", err)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeBody(w, r, http.StatusOK, releasedBody)
}

func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeRequest(s, w, r, parseRenew)
	if !ok {
		return
	}
	g, err := s.renew(r.Context(), req)
	s.countHolderOp(&s.stats.renews, &s.stats.renewNotHolder, err)
	if s.debug(r) {
		s.log.Debug("renew", "resource", req.ResourceID, "ttl", g.TTL, "err", err)
	}
	s.answerGrant(w, r, g, err)
}

// withOwner sets the acquire's clientId: the API key's client when auth is
// on (403 when the body names another one), else the body's or
// defaultClientID.
func (s *Server) withOwner(r *http.Request, req acquireRequest) (acquireRequest, error) {
	if len(s.cfg.APIKeys) > 0 {
		owner, _ := s.keyClient(r)
		if req.ClientID != "" && req.ClientID != owner {
			s.stats.rejected.Add(1)
			return req, &requestError{status: http.StatusForbidden, code: CodeForbidden, msg: "clientId does not match the API key"}
		}
		req.ClientID = owner
	}
	if req.ClientID == "" {
		req.ClientID = defaultClientID
	}
	return req, nil
}

// countHolderOp counts a release or renew that succeeded or was refused as
// not the holder's.
func (s *Server) countHolderOp(ok, notHolder *atomic.Int64, err error) {
	switch {
	case err == nil:
		ok.Add(1)
	case errors.Is(err, ErrNotHeld):
		notHolder.Add(1)
	}
}

// lockBody is the answer of GET /locks/{resourceId}.
type lockBody struct {
	ResourceID   string `json:"resourceId"`
	Held         bool   `json:"held"`
	OwnerID      string `json:"ownerId,omitempty"`
	FencingToken int64  `json:"fencingToken,omitempty"`
	ExpiresAt    string `json:"expiresAt,omitempty"`
	Waiters      int64  `json:"waiters,omitempty"` // blocked acquires queued (extension)
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, id string) {
	if !validResourceID(id) {
		s.writeError(w, r, badRequest(CodeInvalidResourceID, "resourceId must be 1-256 bytes of [A-Za-z0-9:._/-]"))
		return
	}
	if s.kv() == nil {
		s.writeError(w, r, ErrUnavailable)
		return
	}
	st, err := s.lookup(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b := lockBody{ResourceID: id, Held: st.Held, Waiters: st.Waiters}
	if st.Held {
		b.OwnerID, b.FencingToken = st.OwnerID, st.Fencing
		b.ExpiresAt = st.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	s.writeJSON(w, r, http.StatusOK, b)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	err := ErrUnavailable
	if s.kv() != nil {
		err = s.health(r.Context())
	}
	if err != nil {
		w.Header().Set("Retry-After", "1")
		s.writeJSON(w, r, http.StatusServiceUnavailable, map[string]string{
			"status": "unavailable", "name": s.cfg.Name, "code": CodeUnavailable, "error": err.Error()})
		return
	}
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok", "name": s.cfg.Name})
}

// debug reports whether debug logs are on (their arguments cost
// allocations even when the handler drops them).
func (s *Server) debug(r *http.Request) bool { return s.log.Enabled(r.Context(), slog.LevelDebug) }

// jsonContentType is the Content-Type header value of every answer, shared
// (net/http never changes a header's values).
var jsonContentType = []string{"application/json"}

// writeJSON writes v, encoded by encoding/json, after the pre-response
// checkpoint (for the answers off the hot path).
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"success":false}`)
	}
	s.writeBody(w, r, status, append(b, '\n'))
}

// writeBody writes a JSON answer after the pre-response checkpoint (a
// paused server holds its answers).
func (s *Server) writeBody(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	if s.checkpoint(r.Context()) != nil {
		return // closed or the client left: nobody to answer
	}
	s.countRequest(r, status)
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// errorBody is every error answer.
type errorBody struct {
	Success bool   `json:"success"`
	Error   string `json:"error"`
	Code    string `json:"code"`
}

// writeError maps err to its status and stable code (the only place that does).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := httpError(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if status >= 500 {
		s.log.Warn("request failed", "path", r.URL.Path, "status", status, "err", err)
	}
	b := make([]byte, 0, 64+len(msg)+len(code))
	b = append(b, `{"success":false,"error":`...)
	b = appendJSONString(b, msg)
	b = append(b, `,"code":`...)
	b = appendJSONString(b, code)
	s.writeBody(w, r, status, append(b, "}\n"...))
}
