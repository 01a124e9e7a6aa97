package lockserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
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
		s.route(w, r)
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
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		s.writeError(w, r, &requestError{status: http.StatusUnsupportedMediaType, code: CodeUnsupportedMediaType,
			msg: "Content-Type must be application/json"})
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	return true
}

// readBody reads the limited body; a body over the limit is a 413.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, &requestError{status: http.StatusRequestEntityTooLarge, code: CodeBodyTooLarge,
			msg: fmt.Sprintf("request body is larger than %d bytes", maxBodyBytes)}
	case err != nil:
		return nil, badRequest(CodeMalformedJSON, "cannot read request body: "+err.Error())
	}
	return b, nil
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

func toGrantBody(g grant) grantBody {
	return grantBody{Success: true, LockToken: g.Token, FencingToken: g.Fencing,
		ExpiresAt: g.ExpiresAt.UTC().Format(time.RFC3339Nano), TTL: g.TTL.Seconds()}
}

// decodeRequest is the prologue every POST handler shares: read the limited
// body, parse and validate it, and check that the etcd client exists. On
// failure it answers the error itself and reports false.
func decodeRequest[T any](s *Server, w http.ResponseWriter, r *http.Request, parse func([]byte, limits) (T, error)) (T, bool) {
	body, err := readBody(r)
	var req T
	if err == nil {
		req, err = parse(body, s.limits())
	}
	if err == nil && s.kv() == nil {
		err = ErrUnavailable
	}
	if err != nil {
		s.writeError(w, r, err)
		return req, false
	}
	return req, true
}

// answer writes v with 200, or err.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, v)
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
	s.log.Debug("acquire", "resource", req.ResourceID, "client", req.ClientID, "fencing", g.Fencing, "err", err)
	s.answer(w, r, toGrantBody(g), err)
}

func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeRequest(s, w, r, parseRelease)
	if !ok {
		return
	}
	err := s.release(r.Context(), req)
	s.countHolderOp(&s.stats.releases, &s.stats.releaseNotHolder, err)
	s.log.Debug("release", "resource", req.ResourceID, "err", err)
	s.answer(w, r, map[string]bool{"success": true}, err)
}

func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeRequest(s, w, r, parseRenew)
	if !ok {
		return
	}
	g, err := s.renew(r.Context(), req)
	s.countHolderOp(&s.stats.renews, &s.stats.renewNotHolder, err)
	s.log.Debug("renew", "resource", req.ResourceID, "ttl", g.TTL, "err", err)
	s.answer(w, r, toGrantBody(g), err)
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

// writeJSON writes v after the pre-response checkpoint (a paused server
// holds its answers).
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	if s.checkpoint(r.Context()) != nil {
		return // closed or the client left: nobody to answer
	}
	s.countRequest(r, status)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(v)
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
		w.Header().Set("Retry-After", strconv.Itoa(1))
	}
	if status >= 500 {
		s.log.Warn("request failed", "path", r.URL.Path, "status", status, "err", err)
	}
	s.writeJSON(w, r, status, errorBody{Error: msg, Code: code})
}
