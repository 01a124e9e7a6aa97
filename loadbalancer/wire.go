package loadbalancer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
)

// HTTP/1.1 on the balancer's connections to the backends, written and read
// by hand so that a proxied request allocates next to nothing: the request
// is written from the parsed *http.Request straight into the connection's
// buffer, the answer's header is parsed in place and its common keys and
// values (Content-Type: application/json, Date, ...) are shared strings.
// Only the lock API's needs are covered with care; anything unusual in an
// answer (a header line over 8 KiB, an unknown transfer coding, a 101) is
// a broken answer, 502 outcome_unknown.

// errBadAnswer wraps every malformed answer of a backend.
var errBadAnswer = errors.New("loadbalancer: malformed answer from the backend")

// hopHeaders are the hop-by-hop headers (RFC 9110 7.6.1) a proxy does not
// forward, plus those the balancer writes itself or has consumed.
var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true,
	"Proxy-Authenticate": true, "Proxy-Authorization": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true, // written from what is sent
	"Expect":         true, // the balancer read the whole body already
}

// writeRequest writes r's head and its body (body when buffered; else r.Body,
// chunked) to c and flushes.
func writeRequest(c *upConn, r *http.Request, host, prefix string, body []byte, buffered bool) error {
	w := c.bw
	w.WriteString(r.Method)
	w.WriteByte(' ')
	w.WriteString(prefix)
	if uri := r.RequestURI; strings.HasPrefix(uri, "/") {
		w.WriteString(uri)
	} else { // absolute-form or none (a handler called directly)
		w.WriteString(r.URL.RequestURI())
	}
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	dropped := connectionTokens(r.Header)
	for k, vs := range r.Header {
		if hopHeaders[k] || (dropped != nil && dropped[k]) {
			continue
		}
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	switch {
	case !buffered:
		w.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		cw := httputil.NewChunkedWriter(w)
		if _, err := io.Copy(cw, r.Body); err != nil {
			return fmt.Errorf("loadbalancer: read body: %w", err)
		}
		_ = cw.Close()
		w.WriteString("\r\n")
	case len(body) > 0 || r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(c.num[:0], int64(len(body)), 10))
		w.WriteString("\r\n\r\n")
		w.Write(body)
	default:
		w.WriteString("\r\n")
	}
	return w.Flush()
}

// connectionTokens returns the headers named in Connection (also
// hop-by-hop), nil when there are none (the usual case).
func connectionTokens(h http.Header) map[string]bool {
	vs := h["Connection"]
	if len(vs) == 0 {
		return nil
	}
	var out map[string]bool
	for _, v := range vs {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.TrimSpace(tok)
			if tok == "" || strings.EqualFold(tok, "close") || strings.EqualFold(tok, "keep-alive") {
				continue
			}
			if out == nil {
				out = map[string]bool{}
			}
			out[textproto.CanonicalMIMEHeaderKey(tok)] = true
		}
	}
	return out
}

// Body framings of an answer.
const (
	bodyNone    = iota // HEAD, 1xx, 204, 304
	bodyLength         // Content-Length bytes
	bodyChunked        // Transfer-Encoding: chunked
	bodyToClose        // until the backend closes the connection
)

// answer is the parsed head of a backend's answer. Its slices are reused
// from request to request (it lives in the pooled attempt).
type answer struct {
	status  int
	framing int
	length  int64 // with bodyLength
	close   bool  // the connection cannot carry another request
	hasType bool  // Content-Type was sent
	keys    []string
	vals    [][]string
	drop    []string // headers named in Connection
}

func (a *answer) reset() {
	clear(a.keys)
	clear(a.vals)
	*a = answer{keys: a.keys[:0], vals: a.vals[:0], drop: a.drop[:0]}
}

// readAnswerHead reads the status line and header of an answer to a
// request with method, skipping interim (1xx) answers.
func readAnswerHead(br *bufio.Reader, method string, a *answer) error {
	for {
		a.reset()
		line, err := readLine(br)
		if err != nil {
			return err
		}
		if err := a.parseStatus(line); err != nil {
			return err
		}
		if err := a.readHeader(br); err != nil {
			return err
		}
		switch {
		case a.status == http.StatusSwitchingProtocols:
			return fmt.Errorf("%w: unexpected 101", errBadAnswer)
		case a.status < 200:
			continue // 100 Continue, 103 Early Hints
		}
		break
	}
	switch {
	case method == http.MethodHead || a.status == http.StatusNoContent || a.status == http.StatusNotModified:
		a.framing = bodyNone
	case a.framing == bodyChunked:
	case a.length >= 0 && a.framing == bodyLength:
	default:
		a.framing, a.close = bodyToClose, true
	}
	return nil
}

// readLine returns the next line without its CRLF (valid until the next read).
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("%w: header line over %d bytes", errBadAnswer, upReadBuffer)
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// parseStatus parses "HTTP/1.x NNN reason".
func (a *answer) parseStatus(line []byte) error {
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return fmt.Errorf("%w: status line %q", errBadAnswer, line)
	}
	code := 0
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return fmt.Errorf("%w: status line %q", errBadAnswer, line)
		}
		code = code*10 + int(d-'0')
	}
	if code < 100 {
		return fmt.Errorf("%w: status %d", errBadAnswer, code)
	}
	a.status = code
	a.close = line[7] != '1' // HTTP/1.0: no keep-alive assumed
	a.length = -1
	return nil
}

// readHeader reads header lines up to the empty line.
func (a *answer) readHeader(br *bufio.Reader) error {
	for {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || bytes.ContainsAny(line[:colon], " \t") {
			return fmt.Errorf("%w: header line %q", errBadAnswer, line)
		}
		key := internKey(line[:colon])
		val := bytes.Trim(line[colon+1:], " \t")
		switch key {
		case "Content-Length":
			n, err := strconv.ParseInt(string(val), 10, 64) // no allocation: converted for the call only
			if err != nil || n < 0 || (a.length >= 0 && n != a.length) {
				return fmt.Errorf("%w: Content-Length %q", errBadAnswer, val)
			}
			a.length = n
			if a.framing != bodyChunked {
				a.framing = bodyLength
			}
			continue
		case "Transfer-Encoding":
			if !equalFold(val, "chunked") {
				return fmt.Errorf("%w: transfer coding %q", errBadAnswer, val)
			}
			a.framing = bodyChunked
			continue
		case "Connection":
			a.parseConnection(val)
			continue
		case BackendHeader:
			continue // the balancer names the backend itself
		case "Content-Type":
			a.hasType = true
		}
		if hopHeaders[key] {
			continue
		}
		if i := indexOf(a.keys, key); i >= 0 {
			a.vals[i] = append(a.vals[i][:len(a.vals[i]):len(a.vals[i])], string(val))
			continue
		}
		a.keys = append(a.keys, key)
		a.vals = append(a.vals, internValue(key, val))
	}
}

func (a *answer) parseConnection(val []byte) {
	for tok := range bytes.SplitSeq(val, []byte(",")) {
		tok = bytes.TrimSpace(tok)
		switch {
		case len(tok) == 0, equalFold(tok, "keep-alive"):
		case equalFold(tok, "close"):
			a.close = true
		default:
			a.drop = append(a.drop, textproto.CanonicalMIMEHeaderKey(string(tok)))
		}
	}
}

// equalFold reports whether b equals the ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func indexOf(keys []string, k string) int {
	for i, x := range keys {
		if x == k {
			return i
		}
	}
	return -1
}

// writeHead copies the answer's header to h (without the headers named
// in Connection), keeping net/http from guessing a Content-Type.
func (a *answer) writeHead(h http.Header) {
	for i, k := range a.keys {
		if !containsString(a.drop, k) {
			h[k] = a.vals[i]
		}
	}
	if !a.hasType {
		h["Content-Type"] = nil // no sniffing: send none, as the backend did
	}
	// net/http computes the Content-Length of a small answer written in
	// one go (it fits its buffer); a larger one is declared here, and so is
	// the length an answer to HEAD announces.
	headLength := a.framing == bodyNone && a.length >= 0 && a.status != http.StatusNoContent && a.status != http.StatusNotModified
	if headLength || (a.framing == bodyLength && a.length > 2048) {
		h["Content-Length"] = []string{strconv.FormatInt(a.length, 10)}
	}
}

func containsString(s []string, x string) bool { return indexOf(s, x) >= 0 }

// knownKeys are the canonical header keys recognised without allocating.
var knownKeys = []string{
	"Content-Type", "Content-Length", "Date", "Connection", "Transfer-Encoding",
	"X-Content-Type-Options", "Retry-After", "Cache-Control", "Keep-Alive", "Allow",
	"Www-Authenticate", "Vary", "Content-Encoding", "Location", "Server", "Trailer",
	"Upgrade", "Proxy-Connection", "Proxy-Authenticate", "Te", "Expires", "Etag",
	"Last-Modified", "Set-Cookie", BackendHeader,
}

// internKey returns the canonical form of a header key, shared for the
// known keys.
func internKey(k []byte) string {
	for _, known := range knownKeys {
		if equalFold(k, known) {
			return known
		}
	}
	return textproto.CanonicalMIMEHeaderKey(string(k))
}

// knownValues are header values shared by every answer that has them.
var knownValues = map[string][]string{
	"application/json":                jsonContentType,
	"application/json; charset=utf-8": {"application/json; charset=utf-8"},
	"text/plain; charset=utf-8":       {"text/plain; charset=utf-8"},
	"nosniff":                         noSniff,
	"1":                               retryAfterOne,
	"close":                           {"close"},
	"no-cache":                        {"no-cache"},
	"no-store":                        {"no-store"},
}

// lastDate is the last Date value seen: answers within one second share it.
var lastDate atomic.Pointer[[]string]

// internValue returns val as a header value slice, shared when it is a
// known value or the same Date as the previous answer's. net/http never
// changes a header value slice it is given.
func internValue(key string, val []byte) []string {
	if vs, ok := knownValues[string(val)]; ok { // no allocation for the lookup
		return vs
	}
	if key == "Date" {
		if p := lastDate.Load(); p != nil && (*p)[0] == string(val) {
			return *p
		}
		vs := []string{string(val)}
		lastDate.Store(&vs)
		return vs
	}
	return []string{string(val)}
}
