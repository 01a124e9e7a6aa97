package loadbalancer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
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
// that choosing backends, buffering the body and reading the answer's
// header allocate nothing.
type attempt struct {
	views []BackendView
	tried []bool
	body  []byte // the buffered request body
	ans   answer
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
	a := b.attempts.Get().(*attempt)
	defer b.release(a)
	buffered, err := a.readBody(r)
	if err != nil {
		b.countAnswer(nil, http.StatusBadRequest)
		writeJSON(w, http.StatusBadRequest, badBodyBody, nil)
		return
	}
	clear(a.tried)

	for {
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
		w.Header()[BackendHeader] = be.header
		err := b.forward(be, a, w, r, buffered)
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
		if !buffered {
			break
		}
	}
	w.Header().Del(BackendHeader)
	b.countAnswer(nil, http.StatusServiceUnavailable)
	writeJSON(w, http.StatusServiceUnavailable, unavailableBody, retryAfterOne)
}

func (b *Balancer) release(a *attempt) {
	if cap(a.body) > maxBufferedBody+1 {
		a.body = nil
	}
	a.body = a.body[:0]
	a.ans.reset()
	b.attempts.Put(a)
}

// forward sends r to be once and copies its answer to w. It returns an
// error only before anything was written to w: a dial error when nothing
// was sent, any other error when the request may have reached the backend.
// A failure after the answer started aborts the handler (the client sees
// its connection end), as httputil.ReverseProxy does.
func (b *Balancer) forward(be *backend, a *attempt, w http.ResponseWriter, r *http.Request, buffered bool) error {
	be.requests.Add(1)
	be.inFlight.Add(1)
	defer be.inFlight.Add(-1)
	ctx := r.Context()
	fail := func(c *upConn, err error) error {
		if c != nil {
			c.discard()
		}
		if ctx.Err() == nil {
			be.failures.Add(1)
		}
		return err
	}
	c, _, err := be.pool.get(ctx)
	if err != nil {
		return fail(nil, err)
	}
	if err := writeRequest(c, r, be.host, be.prefix, a.body, buffered); err != nil {
		return fail(c, err)
	}
	if err := c.awaitAnswer(ctx); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // closed without an answer
		}
		return fail(c, err)
	}
	if err := readAnswerHead(c.br, r.Method, &a.ans); err != nil {
		return fail(c, err)
	}
	// A paused balancer holds the answer it got until resumed.
	if err := b.pause.check(ctx); err != nil {
		c.discard()
		return err
	}
	a.ans.writeHead(w.Header())
	w.WriteHeader(a.ans.status)
	b.countAnswer(be, a.ans.status)
	if fromBackend, err := copyAnswerBody(w, c.br, &a.ans, b.buffers); err != nil {
		c.discard()
		if fromBackend && ctx.Err() == nil {
			be.failures.Add(1)
		}
		panic(http.ErrAbortHandler)
	}
	if a.ans.close {
		c.discard()
	} else {
		c.pool.put(c)
	}
	return nil
}

// copyAnswerBody copies the answer's body from br to w; fromBackend says
// whether an error was reading (the backend's side) rather than writing.
func copyAnswerBody(w http.ResponseWriter, br *bufio.Reader, a *answer, buffers *bufferPool) (fromBackend bool, err error) {
	switch a.framing {
	case bodyNone:
		return false, nil
	case bodyLength:
		for rem := a.length; rem > 0; {
			if br.Buffered() == 0 {
				if _, err := br.Peek(1); err != nil {
					return true, unexpected(err)
				}
			}
			n := int(min(int64(br.Buffered()), rem))
			p, _ := br.Peek(n)
			if _, err := w.Write(p); err != nil {
				return false, err
			}
			_, _ = br.Discard(n)
			rem -= int64(n)
		}
		return false, nil
	}
	// Chunked, or until the backend closes: a stream, flushed as it comes.
	var src io.Reader = br
	if a.framing == bodyChunked {
		src = httputil.NewChunkedReader(br)
	}
	buf := buffers.Get()
	defer buffers.Put(buf)
	flusher, _ := w.(http.Flusher)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return false, err
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if errors.Is(rerr, io.EOF) {
			if a.framing == bodyChunked {
				return true, skipTrailer(br)
			}
			return false, nil
		}
		if rerr != nil {
			return true, unexpected(rerr)
		}
	}
}

// skipTrailer reads a chunked body's trailer lines (not forwarded).
func skipTrailer(br *bufio.Reader) error {
	for {
		line, err := readLine(br)
		if err != nil {
			return unexpected(err)
		}
		if len(line) == 0 {
			return nil
		}
	}
}

// unexpected turns an end of stream in the middle of an answer into
// io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// isDialError reports whether err means the connection was never
// established (refused, unreachable, dial timeout), so nothing was sent.
// A kept-alive connection that its backend closed while idle is noticed
// and dropped before it is used (upstream.go).
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// readBody buffers a body of up to maxBufferedBody bytes in a.body so that
// it can be sent again, and reports whether it can. A larger body is
// streamed (r.Body then reads what was already taken, then the rest).
func (a *attempt) readBody(r *http.Request) (buffered bool, err error) {
	a.body = a.body[:0]
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return true, nil
	}
	if r.ContentLength > maxBufferedBody {
		return false, nil
	}
	limit := maxBufferedBody + 1
	if r.ContentLength > 0 {
		limit = int(r.ContentLength)
	}
	if cap(a.body) < limit {
		a.body = make([]byte, 0, max(limit, 512))
	}
	for len(a.body) < limit {
		n, err := r.Body.Read(a.body[len(a.body):limit])
		a.body = a.body[:len(a.body)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, fmt.Errorf("loadbalancer: read body: %w", err)
		}
	}
	if r.ContentLength > 0 && len(a.body) < limit {
		return false, fmt.Errorf("loadbalancer: read body: %w", io.ErrUnexpectedEOF)
	}
	if len(a.body) > maxBufferedBody { // unknown length, too long: stream it
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(bytes.Clone(a.body)), r.Body), r.Body}
		return false, nil
	}
	return true, nil
}

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

// bufferPool recycles copy buffers (tcp mode, streamed answers) without
// the per-Put allocation of a sync.Pool of slices.
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
