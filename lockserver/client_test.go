package lockserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestErrorUnwrap(t *testing.T) {
	tests := []struct {
		status int
		code   string
		want   error
	}{
		{409, CodeLockBusy, ErrBusy},
		{409, CodeNotHolder, ErrNotHeld},
		{504, CodeOutcomeUnknown, ErrOutcomeUnknown},
		{503, CodeUnavailable, ErrUnavailable},
		{503, "", ErrUnavailable},
		{429, "rate_limited", ErrUnavailable},
		{502, "", ErrOutcomeUnknown},
		{500, CodeInternal, ErrOutcomeUnknown},
		{400, CodeInvalidTTL, ErrBadRequest},
		{413, CodeBodyTooLarge, ErrBadRequest},
		{404, CodeNotFound, ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.code+"/"+http.StatusText(tt.status), func(t *testing.T) {
			got := &Error{Status: tt.status, Code: tt.code}
			assert.ErrorIs(t, got, tt.want)
		})
	}
}

// TestClientOutcomeClassification: what the client concludes from each way a
// request can end. ErrUnavailable only when the request cannot have taken effect.
func TestClientOutcomeClassification(t *testing.T) {
	answer := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
	}
	hangUp := func(w http.ResponseWriter, r *http.Request) { // reads the request, then drops the connection
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) }) // runs before the servers' Close
	stall := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}
	refused := func(t *testing.T) string { // an address nobody listens on
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr
	}

	tests := []struct {
		name    string
		handler http.HandlerFunc // nil: connection refused
		ctx     func(context.Context) (context.Context, context.CancelFunc)
		read    bool // Get instead of Release
		want    error
		notWant error
	}{
		{name: "connection refused", want: ErrUnavailable, notWant: ErrOutcomeUnknown},
		{name: "cancelled before sending", handler: answer(200, `{"success":true}`), ctx: cancelled, want: ErrUnavailable, notWant: ErrOutcomeUnknown},
		{name: "connection dropped after the request was written", handler: hangUp, want: ErrOutcomeUnknown},
		{name: "no answer before the deadline", handler: stall, ctx: shortDeadline, want: ErrOutcomeUnknown},
		{name: "read with connection dropped", handler: hangUp, read: true, want: ErrUnavailable, notWant: ErrOutcomeUnknown},
		{name: "504 outcome_unknown", handler: answer(504, `{"success":false,"error":"x","code":"outcome_unknown"}`), want: ErrOutcomeUnknown},
		{name: "503 unavailable", handler: answer(503, `{"success":false,"error":"x","code":"unavailable"}`), want: ErrUnavailable},
		{name: "502 from a proxy without body", handler: answer(502, ``), want: ErrOutcomeUnknown},
		{name: "409 not_holder", handler: answer(409, `{"success":false,"error":"x","code":"not_holder"}`), want: ErrNotHeld},
		{name: "400 invalid_resource_id", handler: answer(400, `{"success":false,"error":"x","code":"invalid_resource_id"}`), want: ErrBadRequest},
		{name: "200 ok", handler: answer(200, `{"success":true}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := refused(t)
			if tt.handler != nil {
				srv := httptest.NewServer(tt.handler)
				t.Cleanup(srv.Close)
				base = srv.URL
			}
			ctx, cancel := context.WithCancel(t.Context())
			if tt.ctx != nil {
				ctx, cancel = tt.ctx(t.Context())
			}
			defer cancel()
			c := &Client{BaseURL: base}
			var err error
			if tt.read {
				_, err = c.Get(ctx, "r")
			} else {
				err = c.Release(ctx, "r", "tok")
			}
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			if tt.notWant != nil {
				assert.NotErrorIs(t, err, tt.notWant)
			}
		})
	}
}

func cancelled(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	cancel()
	return ctx, cancel
}

func shortDeadline(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, 100*time.Millisecond)
}

// TestClientWireFormat: durations go out as JSON seconds and the grant comes back parsed.
func TestClientWireFormat(t *testing.T) {
	var got map[string]any
	var gotType string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotType = r.Header.Get("Content-Type")
		got = nil
		_ = json.NewDecoder(r.Body).Decode(&got)
		_, _ = io.WriteString(w, `{"success":true,"lockToken":"t","fencingToken":42,"expiresAt":"2030-01-02T03:04:05.5Z","ttl":2}`)
	}))
	t.Cleanup(srv.Close)
	c := &Client{BaseURL: srv.URL + "/", ClientID: "client-A"}
	g, err := c.Acquire(t.Context(), "order:1", 1500*time.Millisecond, 250*time.Millisecond)
	require.NoError(t, err)
	assert.Equal(t, "application/json", gotType)
	assert.Equal(t, map[string]any{"resourceId": "order:1", "ttl": 1.5, "timeout": 0.25, "clientId": "client-A"}, got)
	want := Grant{LockToken: "t", FencingToken: 42, ExpiresAt: time.Date(2030, 1, 2, 3, 4, 5, 5e8, time.UTC), TTL: 2 * time.Second}
	assert.Equal(t, want, g)

	_, err = c.Renew(t.Context(), "order:1", "t", 0)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"resourceId": "order:1", "lockToken": "t"}, got, "ttl 0 is not sent")
}

func TestClientAgainstRealServerRejectsLocally(t *testing.T) {
	// A malformed resource id is the server's call, not the client's: the
	// client sends it and maps 400 to ErrBadRequest.
	srv := httptest.NewServer(func() http.Handler {
		s, err := New(Config{Endpoints: []string{"http://127.0.0.1:1"}})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s.Handler()
	}())
	t.Cleanup(srv.Close)
	c := &Client{BaseURL: srv.URL}
	_, err := c.Acquire(t.Context(), "bad id", time.Second, 0)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, CodeInvalidResourceID, e.Code)
	assert.True(t, errors.Is(err, ErrBadRequest))
	// Not started: no etcd client, so a valid request is 503.
	_, err = c.Acquire(t.Context(), "ok", time.Second, 0)
	assert.ErrorIs(t, err, ErrUnavailable)
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

// FuzzGrantDecodeAgrees: whenever the client's fast path decodes an answer,
// encoding/json decodes the same grant from it.
func FuzzGrantDecodeAgrees(f *testing.F) {
	for _, s := range []string{
		`{"success":true,"lockToken":"6f1c","fencingToken":1234,"expiresAt":"2026-11-25T10:00:30.1Z","ttl":30}`,
		`{"success":true,"lockToken":"a","fencingToken":1.5,"expiresAt":"x","ttl":1,"extra":"ignored"}`,
		`{"LockToken":"a"}`, `{"fencingToken":-0,"ttl":1e2}`, `{"success":false,"success":true}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var fast grantBody
		var buf [maxMembers]jsonMember
		ms, ok := scanFlatObject(raw, &buf)
		if !ok || !fast.fast(ms) {
			return
		}
		var slow grantBody
		if err := json.Unmarshal(raw, &slow); err != nil {
			t.Fatalf("fast path decoded %q, encoding/json rejects it: %v", raw, err)
		}
		if fast != slow {
			t.Fatalf("%q: fast path %+v, encoding/json %+v", raw, fast, slow)
		}
	})
}
