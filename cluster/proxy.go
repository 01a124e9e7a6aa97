package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// peerProxy fronts one member's peer listener. It listens on the member's
// advertised peer URL (the one every other member dials) with TLS, learns
// from each connection's client certificate which member opened it, and
// relays every HTTP request to the member's real, plain-HTTP listener and
// the response back, each as a flow over the right directed link of the
// network: the request from the dialling member to this one, the response
// from this one back. It outlives crashes of its member: from the moment a
// crash begins until the member restarts every request is aborted (the
// dialler sees a broken connection and retries), as it would be by a dead
// process. (Letting requests through while the member stops is not only
// unlike a real crash: a /version request that reaches etcd while HardStop
// closes the store blocks forever on the store's lock and keeps the whole
// stopped server in memory.)
type peerProxy struct {
	nw    *network
	to    int // the member behind this proxy
	index func(name string) (int, error)

	srv    *http.Server
	rp     *httputil.ReverseProxy
	up     *http.Transport
	served chan struct{} // closed when srv.Serve has returned

	// mu guards closed and down; wg counts handlers and flow pumps, which
	// only start while !closed (enter), so that close can wait for them.
	// down is set while the member is stopping or stopped (setDown).
	mu     sync.Mutex
	closed bool
	down   bool
	wg     sync.WaitGroup
}

// respKey carries the response's link from the handler to ModifyResponse.
type respKey struct{}

type respLink struct {
	to     int
	signal bool
}

// startPeerProxy listens on addr with tlsCfg and relays to the member
// listening on memberAddr. index maps a client certificate's Common Name to
// a member index.
func startPeerProxy(nw *network, to int, index func(string) (int, error), addr, memberAddr string, tlsCfg *tls.Config) (*peerProxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cluster: peer proxy on %s: %w", addr, err)
	}
	discard := log.New(io.Discard, "", 0)
	p := &peerProxy{nw: nw, to: to, index: index, served: make(chan struct{})}
	p.up = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	target := &url.URL{Scheme: "http", Host: memberAddr}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport:      p.up,
		FlushInterval:  -1, // Raft streams: pass every write on at once
		ModifyResponse: p.response,
		// The member is down, the request was lost to a cut, or the dialler
		// went away: break the connection, as a network would.
		ErrorHandler: func(http.ResponseWriter, *http.Request, error) { panic(http.ErrAbortHandler) },
		ErrorLog:     discard,
	}
	p.srv = &http.Server{Handler: p, ErrorLog: discard, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(p.served)
		_ = p.srv.Serve(tls.NewListener(ln, tlsCfg))
	}()
	return p, nil
}

// classify tells rafthttp's transport signals, which carry no Raft message,
// from everything else. A stream subscription (GET /raft/stream/...) is a
// request without content: the Raft messages travel in its response, from
// the answering member to the subscriber. The answer to a pipeline or
// snapshot POST (/raft, /raft/snapshot) is an empty receipt: the messages
// travelled in the request. Any other request and response (forwarded lease
// renewals and lookups, version and health probes, membership) is a message
// in its own right.
func classify(r *http.Request) (requestSignal, responseSignal bool) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/raft/stream/"):
		return true, false
	case r.Method == http.MethodPost && (r.URL.Path == "/raft" || r.URL.Path == "/raft/snapshot"):
		return false, true
	}
	return false, false
}

// enter counts a goroutine that close waits for (the caller calls
// p.wg.Done), unless the proxy is closing or, for a request (admit), its
// member is down. One lock per request.
func (p *peerProxy) enter() bool { return p.count(false) }

func (p *peerProxy) admit() bool { return p.count(true) }

func (p *peerProxy) count(request bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || (request && p.down) {
		return false
	}
	p.wg.Add(1)
	return true
}

// spawn runs a flow's pump in a goroutine that close waits for; once the
// proxy is closing it runs nothing (the flow then ends with its exchange).
func (p *peerProxy) spawn(fn func()) {
	if p.enter() {
		go func() {
			defer p.wg.Done()
			fn()
		}()
	}
}

// setDown makes the proxy abort every request to its member (down) or
// relay them again; Crash sets it before HardStop, Restart clears it.
func (p *peerProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

func (p *peerProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.admit() {
		panic(http.ErrAbortHandler) // closing, or the member is crashed
	}
	defer p.wg.Done()

	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		http.Error(w, "no client certificate", http.StatusForbidden)
		return
	}
	from, err := p.index(r.TLS.PeerCertificates[0].Subject.CommonName)
	if err != nil || from == p.to {
		http.Error(w, "unknown peer", http.StatusForbidden)
		return
	}
	reqSignal, respSignal := classify(r)
	in := newFlow(r.Context(), p.nw, p.spawn, from, p.to, reqSignal, r.Body, false)
	defer in.Close()
	if err := in.arrive(); err != nil {
		panic(http.ErrAbortHandler)
	}
	r.Body = in
	ctx := context.WithValue(r.Context(), respKey{}, respLink{to: from, signal: respSignal})
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

// response turns the member's response into a flow back to the dialler and
// holds it for as long as the network says.
func (p *peerProxy) response(resp *http.Response) error {
	ctx := resp.Request.Context()
	l, _ := ctx.Value(respKey{}).(respLink)
	out := newFlow(ctx, p.nw, p.spawn, p.to, l.to, l.signal, resp.Body, true)
	resp.Body = out // closed by the ReverseProxy, also on error
	return out.arrive()
}

// close stops the listener, breaks every connection through the proxy and
// returns when its handlers and flows are gone.
func (p *peerProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.srv.Close()
	<-p.served
	p.wg.Wait()
	p.up.CloseIdleConnections()
}

// startProxies starts one proxy per member in front of its peer listener.
func (c *Cluster) startProxies() error {
	if c.direct {
		return nil
	}
	c.mu.RLock()
	type addrs struct{ proxy, member string }
	aa := make([]addrs, len(c.members))
	for i, m := range c.members {
		aa[i] = addrs{net.JoinHostPort(c.cfg.Host, strconv.Itoa(m.peerPort)), net.JoinHostPort(c.cfg.Host, strconv.Itoa(m.listenPort))}
	}
	c.mu.RUnlock()
	index := func(name string) (int, error) { return c.index(name) }
	proxies := make([]*peerProxy, len(aa))
	for i, a := range aa {
		px, err := startPeerProxy(c.nw, i, index, a.proxy, a.member, c.pki.server)
		if err != nil {
			for _, px := range proxies[:i] {
				px.close()
			}
			return err
		}
		proxies[i] = px
	}
	c.mu.Lock()
	c.proxies = proxies
	c.mu.Unlock()
	return nil
}

// proxyDown sets whether member i's proxy aborts every request to it (see
// peerProxy.setDown); a no-op without proxies.
func (c *Cluster) proxyDown(i int, down bool) {
	c.mu.RLock()
	var p *peerProxy
	if i < len(c.proxies) {
		p = c.proxies[i]
	}
	c.mu.RUnlock()
	if p != nil {
		p.setDown(down)
	}
}

// closeProxies closes every proxy.
func (c *Cluster) closeProxies() {
	c.mu.Lock()
	proxies := c.proxies
	c.proxies = nil
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range proxies {
		wg.Go(p.close)
	}
	wg.Wait()
}
