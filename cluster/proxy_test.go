package cluster

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// proxyRig is one peer proxy for member "b" (index 1) in front of a fake
// member, and an HTTP client holding member "a"'s (index 0) certificate.
type proxyRig struct {
	nw      *network
	url     string
	client  *http.Client
	arrived chan string // every request the fake member received
}

func newProxyRig(t *testing.T) *proxyRig {
	t.Helper()
	pki, err := newPeerPKI(t.TempDir(), "127.0.0.1", []string{"a", "b"})
	require.NoError(t, err)
	r := &proxyRig{nw: newNetwork(2, 1), arrived: make(chan string, 16)}
	member := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.arrived <- req.Method + " " + req.URL.Path
		switch {
		case strings.HasPrefix(req.URL.Path, "/raft/stream/"):
			_, _ = io.WriteString(w, "raft messages of b")
			w.(http.Flusher).Flush()
			<-req.Context().Done()
		case req.URL.Path == "/raft":
			w.WriteHeader(http.StatusNoContent)
		default:
			_, _ = io.WriteString(w, "answer")
		}
	}))
	t.Cleanup(member.Close)
	index := func(name string) (int, error) {
		switch name {
		case "a":
			return 0, nil
		case "b":
			return 1, nil
		}
		return 0, ErrUnknownMember
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	px, err := startPeerProxy(r.nw, 1, index, addr, member.Listener.Addr().String(), pki.server)
	require.NoError(t, err)
	t.Cleanup(px.close)
	r.url = "https://" + addr
	tlsCfg, err := pki.tlsInfo("a").ClientConfig()
	require.NoError(t, err)
	r.client = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	t.Cleanup(r.client.CloseIdleConnections)
	return r
}

// do sends a request from a to b and returns the status and the first
// bytes of the body.
func (r *proxyRig) do(ctx context.Context, method, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, r.url+path, strings.NewReader("x"))
	if err != nil {
		return 0, "", err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(resp.Body, buf, 1)
	if resp.StatusCode == http.StatusNoContent {
		err = nil
	}
	return resp.StatusCode, string(buf[:n]), err
}

// TestProxyCutsMessagesPerDirection: a request is a message from the member
// that sends it, its response a message back; rafthttp's transport signals
// (a stream subscription, a pipeline receipt) carry no message and pass.
func TestProxyCutsMessagesPerDirection(t *testing.T) {
	t.Parallel()
	const (
		ab = "a->b"
		ba = "b->a"
	)
	tests := []struct {
		name        string
		cut         string
		method      string
		path        string
		wantArrived bool   // the member behind the proxy got the request
		wantBody    string // "" : the requester got nothing
	}{
		{name: "open: exchange", method: "POST", path: "/leases", wantArrived: true, wantBody: "answer"},
		{name: "sender cut: request lost", cut: ab, method: "POST", path: "/leases"},
		{name: "receiver cut: answer lost", cut: ba, method: "POST", path: "/leases", wantArrived: true},
		{name: "sender cut: pipeline message lost", cut: ab, method: "POST", path: "/raft"},
		{name: "receiver cut: pipeline receipt passes", cut: ba, method: "POST", path: "/raft", wantArrived: true, wantBody: "204"},
		{name: "subscriber's cut: subscription passes, b's messages flow", cut: ab, method: "GET", path: "/raft/stream/message/1",
			wantArrived: true, wantBody: "raft messages of b"},
		{name: "b's messages cut: stream silent", cut: ba, method: "GET", path: "/raft/stream/message/1", wantArrived: true},
		{name: "sender cut: probe lost", cut: ab, method: "GET", path: "/raft/probing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newProxyRig(t)
			m := newLinkMatrix(2)
			m[0][1] = tt.cut == ab
			m[1][0] = tt.cut == ba
			r.nw.setCuts(m)
			// Long enough for a request that is let through to be answered.
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			status, body, err := r.do(ctx, tt.method, tt.path)
			if status == http.StatusNoContent {
				body = "204"
			}
			if tt.wantBody == "" {
				assert.Error(t, err, "the requester hears nothing (got %d %q)", status, body)
			} else {
				require.NoError(t, err)
				assert.Equal(t, tt.wantBody, body)
			}
			// Whatever was let through reached the member before the answer
			// (or the requester's deadline); a lost request never does.
			var got []string
			for len(r.arrived) > 0 {
				got = append(got, <-r.arrived)
			}
			if tt.wantArrived {
				assert.Equal(t, []string{tt.method + " " + tt.path}, got)
			} else {
				assert.Empty(t, got)
			}
		})
	}
}

// TestProxyMendAbortsHeldExchange: a requester whose request was lost waits
// (as for any lost message) until the link is mended; then its connection is
// broken, so it retries at once instead of at its own timeout.
func TestProxyMendAbortsHeldExchange(t *testing.T) {
	t.Parallel()
	r := newProxyRig(t)
	r.nw.setCuts(linkMatrix{{false, true}, {false, false}})
	done := make(chan error, 1)
	go func() {
		_, _, err := r.do(t.Context(), "POST", "/leases")
		done <- err
	}()
	require.Eventually(t, func() bool {
		r.nw.mu.Lock()
		defer r.nw.mu.Unlock()
		return len(r.nw.lost[0][1]) > 0
	}, 10*time.Second, time.Millisecond, "the request reaches the proxy and is lost")
	r.nw.setCuts(linkMatrix{{false, true}, {true, false}}) // b->a: not the lost request's link
	select {
	case err := <-done:
		t.Fatalf("the requester heard back (%v) while its request is lost", err)
	default:
	}
	r.nw.setCuts(newLinkMatrix(2))
	select {
	case err := <-done:
		require.Error(t, err)
		assert.NotErrorIs(t, err, context.Canceled)
	case <-time.After(30 * time.Second):
		t.Fatal("the held request was not aborted by the mend")
	}
	assert.Empty(t, r.arrived, "a lost request is never delivered, even after the mend")
	_, body, err := r.do(t.Context(), "POST", "/leases")
	require.NoError(t, err)
	assert.Equal(t, "answer", body, "a new request passes")
}

// TestProxyRequiresAMemberCertificate: the proxy knows every sender by its
// certificate; a client without one signed by the cluster's CA cannot talk.
func TestProxyRequiresAMemberCertificate(t *testing.T) {
	t.Parallel()
	r := newProxyRig(t)
	other, err := newPeerPKI(t.TempDir(), "127.0.0.1", []string{"a"})
	require.NoError(t, err)
	for name, cfg := range map[string]*tls.Config{
		"no certificate":      {InsecureSkipVerify: true}, //nolint:gosec // the proxy's certificate is not what is tested
		"foreign CA's member": mustClientConfig(t, other, "a"),
	} {
		cli := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		_, err := cli.Post(r.url+"/leases", "text/plain", strings.NewReader("x"))
		assert.Error(t, err, name)
		cli.CloseIdleConnections()
	}
	assert.Empty(t, r.arrived)
}

func mustClientConfig(t *testing.T, p *peerPKI, name string) *tls.Config {
	t.Helper()
	info := p.tlsInfo(name)
	info.InsecureSkipVerify = true // only the client certificate is foreign
	cfg, err := info.ClientConfig()
	require.NoError(t, err)
	return cfg
}
