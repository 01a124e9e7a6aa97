package lockserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unstarted serves the handler of a Server that was never started: requests
// that pass auth, the rate limit and validation answer 503 (no etcd client).
func unstarted(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	cfg.Endpoints = []string{"http://127.0.0.1:1"}
	s, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, url, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var eb errorBody
	_ = jsonDecode(resp, &eb)
	return resp.StatusCode, eb.Code
}

func TestAuth(t *testing.T) {
	srv := unstarted(t, Config{APIKeys: map[string]string{"k1": "client-A"}})
	acquire := srv.URL + "/locks/acquire"
	tests := []struct {
		name       string
		auth, body string
		wantStatus int
		wantCode   string
	}{
		{"no key", "", `{"resourceId":"r","ttl":1}`, 401, CodeUnauthorized},
		{"unknown key", "Bearer nope", `{"resourceId":"r","ttl":1}`, 401, CodeUnauthorized},
		{"not bearer", "Basic k1", `{"resourceId":"r","ttl":1}`, 401, CodeUnauthorized},
		{"clientId of someone else", "Bearer k1", `{"resourceId":"r","ttl":1,"clientId":"client-B"}`, 403, CodeForbidden},
		{"own clientId passes auth", "Bearer k1", `{"resourceId":"r","ttl":1,"clientId":"client-A"}`, 503, CodeUnavailable},
		{"no clientId passes auth", "Bearer k1", `{"resourceId":"r","ttl":1}`, 503, CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotStatus, gotCode := post(t, acquire, tt.auth, tt.body)
			assert.Equal(t, tt.wantStatus, gotStatus)
			assert.Equal(t, tt.wantCode, gotCode)
		})
	}
	c := &Client{BaseURL: srv.URL, APIKey: "k1"}
	assert.ErrorIs(t, c.Release(t.Context(), "r", "t"), ErrUnavailable, "the client sends its key")
	resp, err := http.Get(srv.URL + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "health needs no key (503: not started)")
}

func TestRateLimit(t *testing.T) {
	now := time.Unix(1000, 0)
	srv := unstarted(t, Config{RateLimit: 1, RateBurst: 2, Now: func() time.Time { return now }})
	body := `{"resourceId":"r","ttl":1}`
	for i := range 2 {
		got, _ := post(t, srv.URL+"/locks/acquire", "", body)
		assert.Equal(t, http.StatusServiceUnavailable, got, "request %d within the burst", i)
	}
	got, code := post(t, srv.URL+"/locks/acquire", "", body)
	assert.Equal(t, http.StatusTooManyRequests, got)
	assert.Equal(t, CodeRateLimited, code)
	_, err := (&Client{BaseURL: srv.URL}).Acquire(t.Context(), "r", time.Second, 0)
	assert.ErrorIs(t, err, ErrUnavailable, "429 cannot have taken effect")
}
