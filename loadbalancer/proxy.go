package loadbalancer

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
)

// BackendHeader names the response header that says which backend served
// (or last failed) a request.
const BackendHeader = "X-Locksim-Backend"

// maxBufferedBody is the largest request body kept in memory so that a
// request whose connection was refused can be sent to another backend.
// Lock API bodies are far smaller; a larger body is streamed, and then a
// refused connection is answered 503 instead of retried.
const maxBufferedBody = 64 << 10

var (
	discardLog = log.New(io.Discard, "", 0)

	// Shared read-only header values: assigning them allocates nothing.
	jsonContentType = []string{"application/json"}
	retryAfterOne   = []string{"1"}
	noSniff         = []string{"nosniff"}

	unavailableBody = []byte(`{"success":false,"error":"no healthy lock server","code":"unavailable"}`)
	badBodyBody     = []byte(`{"success":false,"error":"could not read the request body","code":"bad_request"}`)
)

// errorBody is the lock API's error shape.
type errorBody struct {
	Success bool   `json:"success"`
	Error   string `json:"error"`
	Code    string `json:"code"`
}

// attempt is the per-request scratch space, recycled through a pool so
// that choosing backends allocates nothing.
type attempt struct {
	views []BackendView
	tried []bool
	w     attemptWriter
}

// attemptWriter carries a transport error from the ReverseProxy's
// ErrorHandler back to serveHTTP, which decides between a retry, a 502 and
// a 503. ReverseProxy calls the ErrorHandler before writing anything.
type attemptWriter struct {
	http.ResponseWriter
	err    error
	status int // the final status the backend's answer was sent with
}

// WriteHeader records the final status (for the metrics) and sends it.
func (w *attemptWriter) WriteHeader(code int) {
	if code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *attemptWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recordError is every backend proxy's ErrorHandler.
func recordError(rw http.ResponseWriter, _ *http.Request, err error) {
	if aw, ok := rw.(*attemptWriter); ok {
		aw.err = err
		return
	}
	writeOutcomeUnknown(rw, "", err) // not reached: serveHTTP always wraps
}

// rewriteTo returns a Rewrite func sending requests to target, keeping
// the request's path and query. X-Forwarded-* headers are not added.
func rewriteTo(target *url.URL) func(*httputil.ProxyRequest) {
	if target.Path == "" || target.Path == "/" {
		scheme, host := target.Scheme, target.Host
		return func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = scheme
			pr.Out.URL.Host = host
			pr.Out.Host = ""
		}
	}
	return func(pr *httputil.ProxyRequest) { pr.SetURL(target) }
}

// serveHTTP is the balancer's handler: pick a backend, forward, and on a
// refused connection (the request never left) try the next one.
func (b *Balancer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if b.pause.check(r.Context()) != nil {
		panic(http.ErrAbortHandler) // frozen until the client left: no answer at all
	}
	switch r.URL.Path {
	case MetricsPath:
		b.serveMetrics(w, r)
		return
	case CheckPath:
		b.serveCheck(w, r)
		return
	}
	replayable, err := prepareBody(r)
	if err != nil {
		b.countAnswer(nil, http.StatusBadRequest)
		writeJSON(w, http.StatusBadRequest, badBodyBody, nil)
		return
	}
	a := b.attempts.Get().(*attempt)
	defer b.release(a)
	clear(a.tried)
	a.w.ResponseWriter = w

	for n := 0; ; n++ {
		for i, be := range b.backends {
			a.views[i] = BackendView{
				Eligible: !a.tried[i] && be.up.Load(),
				InFlight: be.inFlight.Load(),
			}
		}
		i, ok := b.picker.Pick(a.views)
		if !ok {
			break
		}
		a.tried[i] = true
		be := b.backends[i]
		if n > 0 {
			rewind(r)
		}
		w.Header()[BackendHeader] = be.header
		err := b.forward(be, a, r)
		if err == nil {
			return
		}
		if r.Context().Err() != nil {
			// The client left (or Close cancelled it). Whether the request
			// took effect is unknown to it anyway; do not blame the backend.
			b.countAnswer(be, http.StatusBadGateway)
			writeOutcomeUnknown(w, be.url, err)
			return
		}
		if !isDialError(err) {
			// The request may have reached the backend: never resend it.
			b.countAnswer(be, http.StatusBadGateway)
			writeOutcomeUnknown(w, be.url, err)
			return
		}
		b.record(be, err, false) // a refused connection counts toward Fall
		if !replayable {
			break
		}
	}
	w.Header().Del(BackendHeader)
	b.countAnswer(nil, http.StatusServiceUnavailable)
	writeJSON(w, http.StatusServiceUnavailable, unavailableBody, retryAfterOne)
}

func (b *Balancer) release(a *attempt) {
	a.w = attemptWriter{}
	b.attempts.Put(a)
}

// forward sends r to be once and returns the transport error, if any.
func (b *Balancer) forward(be *backend, a *attempt, r *http.Request) error {
	be.requests.Add(1)
	be.inFlight.Add(1)
	a.w.err, a.w.status = nil, 0
	defer func() {
		be.inFlight.Add(-1)
		if p := recover(); p != nil {
			// ReverseProxy aborts with http.ErrAbortHandler when the
			// backend's connection fails after the response started.
			be.failures.Add(1)
			b.countAnswer(be, a.w.status)
			panic(p)
		}
	}()
	be.proxy.ServeHTTP(&a.w, r)
	if a.w.err != nil && r.Context().Err() == nil {
		be.failures.Add(1)
	}
	if a.w.err == nil {
		b.countAnswer(be, cmp.Or(a.w.status, http.StatusOK))
	}
	return a.w.err
}

// isDialError reports whether err means the connection was never
// established (refused, unreachable, dial timeout), so nothing was sent.
// Requests lost on a reused connection before anything was written are
// resent by http.Transport itself, thanks to GetBody.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// prepareBody buffers a body of up to maxBufferedBody bytes so that it can
// be sent again, and reports whether it can. A larger body is streamed.
func prepareBody(r *http.Request) (replayable bool, err error) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return true, nil
	}
	var data []byte
	if r.ContentLength > 0 && r.ContentLength <= maxBufferedBody {
		data = make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, data); err != nil {
			return false, fmt.Errorf("loadbalancer: read body: %w", err)
		}
	} else {
		data, err = io.ReadAll(io.LimitReader(r.Body, maxBufferedBody+1))
		if err != nil {
			return false, fmt.Errorf("loadbalancer: read body: %w", err)
		}
		if len(data) > maxBufferedBody {
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(data), r.Body), r.Body}
			return false, nil
		}
		r.ContentLength = int64(len(data))
		r.TransferEncoding = nil
	}
	rb := &replayBody{data: data}
	r.Body = rb
	r.GetBody = rb.fresh
	return true, nil
}

// rewind gives r a fresh reader over its buffered body.
func rewind(r *http.Request) {
	if rb, ok := r.Body.(*replayBody); ok {
		r.Body = &replayBody{data: rb.data}
	}
}

// replayBody reads an immutable buffered body. Each send gets its own
// replayBody, so a transport goroutine outliving the handler reads only
// data that nobody changes.
type replayBody struct {
	data []byte
	off  int
}

func (b *replayBody) Read(p []byte) (int, error) {
	if b.off >= len(b.data) {
		return 0, io.EOF
	}
	n := copy(p, b.data[b.off:])
	b.off += n
	return n, nil
}

func (b *replayBody) Close() error { return nil }

// fresh is the request's GetBody.
func (b *replayBody) fresh() (io.ReadCloser, error) { return &replayBody{data: b.data}, nil }

func writeOutcomeUnknown(w http.ResponseWriter, backendURL string, err error) {
	msg := "the lock server failed during the request, which may have taken effect: " + err.Error()
	if backendURL != "" {
		msg = "lock server " + backendURL + " failed during the request, which may have taken effect: " + err.Error()
	}
	body, _ := json.Marshal(errorBody{Error: msg, Code: "outcome_unknown"})
	writeJSON(w, http.StatusBadGateway, body, nil)
}

func writeJSON(w http.ResponseWriter, status int, body []byte, retryAfter []string) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Content-Type-Options"] = noSniff
	if retryAfter != nil {
		h["Retry-After"] = retryAfter
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// bufferPool recycles ReverseProxy's response copy buffers without the
// per-Put allocation of a sync.Pool of slices.
type bufferPool struct {
	mu   sync.Mutex
	free [][]byte
}

const (
	copyBufferSize = 16 << 10
	maxFreeBuffers = 128
)

func newBufferPool() *bufferPool { return &bufferPool{} }

func (p *bufferPool) Get() []byte {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		buf := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return buf
	}
	p.mu.Unlock()
	return make([]byte, copyBufferSize)
}

func (p *bufferPool) Put(buf []byte) {
	p.mu.Lock()
	if len(p.free) < maxFreeBuffers {
		p.free = append(p.free, buf)
	}
	p.mu.Unlock()
}
