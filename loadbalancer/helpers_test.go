package loadbalancer

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// counting is a stand-in lock server: /health answers ok, every other
// request is counted and its body echoed.
type counting struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newCounting(t *testing.T) *counting {
	t.Helper()
	c := &counting{}
	c.srv = httptest.NewServer(c)
	t.Cleanup(c.srv.Close)
	return c
}

func (c *counting) URL() string { return c.srv.URL }

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/health" {
		_, _ = io.WriteString(w, `{"status":"ok"}`)
		return
	}
	c.hits.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// deadURL returns the URL of a port nobody listens on (connections to it
// are refused).
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return "http://" + addr
}

func newTestBalancer(t *testing.T, cfg Config) *Balancer {
	t.Helper()
	b, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	return b
}

// serveHandler serves b.Handler() without Start: no health checks run
// unless the test calls checkAll.
func serveHandler(t *testing.T, b *Balancer) string {
	t.Helper()
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

type client struct{ hc *http.Client }

func newClient(t *testing.T) *client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{hc: &http.Client{Transport: tr}}
}

type result struct {
	status  int
	backend string
	header  http.Header
	body    string
}

func (c *client) do(t *testing.T, req *http.Request) result {
	t.Helper()
	resp, err := c.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return result{
		status:  resp.StatusCode,
		backend: resp.Header.Get(BackendHeader),
		header:  resp.Header,
		body:    string(body),
	}
}

func (c *client) post(t *testing.T, url, body string) result {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	return c.do(t, req)
}

// post sends one request on a connection of its own.
func post(t *testing.T, base, path, body string) result {
	t.Helper()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	return (&client{hc: &http.Client{Transport: tr}}).post(t, base+path, body)
}
