package cluster

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/pkg/v3/proxy"
	"go.uber.org/zap"
)

// peerProxy is the pkg/proxy server in front of one member's peer listener.
// It outlives crashes of the member: while the member is down it accepts
// connections but cannot dial the member, so they fail (see the package doc).
type peerProxy struct {
	srv proxy.Server
	// drained is closed when the goroutine draining srv.Error() has ended.
	drained chan struct{}
}

// startPeerProxy listens on host:from and forwards every connection to
// host:to. pkg/proxy binds ":from" (every interface); the listener is then
// reset to host:from, so only host is bound once it returns.
func startPeerProxy(lg *zap.Logger, host string, from, to int) (*peerProxy, error) {
	srv := proxy.NewServer(proxy.ServerConfig{
		Logger: lg,
		From:   url.URL{Scheme: "http", Host: net.JoinHostPort(host, strconv.Itoa(from))},
		To:     url.URL{Scheme: "http", Host: net.JoinHostPort(host, strconv.Itoa(to))},
	})
	select {
	case <-srv.Ready():
	case <-srv.Done(): // NewServer failed to listen: it queued the error and closed.
		err := fmt.Errorf("proxy did not start")
		select {
		case err = <-srv.Error():
		default:
		}
		return nil, fmt.Errorf("cluster: peer proxy on port %d: %w", from, err)
	}
	p := &peerProxy{srv: srv, drained: make(chan struct{})}
	// Every error send in pkg/proxy blocks its accept or copy loop until read.
	go func() {
		defer close(p.drained)
		for {
			select {
			case err := <-srv.Error():
				lg.Debug("peer proxy", zap.Error(err))
			case <-srv.Done():
				return
			}
		}
	}()
	// Rebind to host only. The accept loop, woken by the closed listener,
	// resets it once more to the same host:port.
	if err := srv.ResetListener(); err != nil {
		p.close()
		return nil, fmt.Errorf("cluster: peer proxy on port %d: %w", from, err)
	}
	return p, nil
}

// close stops the listener and waits for the proxied connections to end,
// which needs both of their ends closed (the member is stopped).
func (p *peerProxy) close() {
	_ = p.srv.Close()
	<-p.drained
}

// setDelay replaces the proxy's delays; a zero latency removes them.
func (p *peerProxy) setDelay(d linkDelay) {
	p.srv.UndelayTx()
	p.srv.UndelayRx()
	tx, rx := splitDelay(d)
	if tx.Latency > 0 {
		p.srv.DelayTx(tx.Latency, tx.Jitter)
	}
	if rx.Latency > 0 {
		p.srv.DelayRx(rx.Latency, rx.Jitter)
	}
}

// linkDelay is the delay asked for on the links into one member.
type linkDelay struct {
	Latency, Jitter time.Duration
}

// splitDelay maps the delay asked for on a member to its proxy's DelayTx
// (bytes flowing into the member on connections the others opened) and
// DelayRx (bytes the member writes back on them). etcd's rafthttp streams
// are dialled by the RECEIVER: the others' Raft messages to the member never
// cross its proxy, and its own Raft messages to them are the Rx bytes. So
// the whole latency goes on Rx: a Raft round trip with the member (request
// out of it, or answer from it) gains at least the latency, and so does a
// request-response into it (pipeline POST, forwarded lease renewal), whose
// answer is delayed. Measured with latency split evenly over Tx and Rx, a
// write with both followers delayed gained only 0.6-1.0x the latency.
// Jitter is capped at the latency (pkg/proxy would replace a larger one with
// latency/10).
func splitDelay(d linkDelay) (tx, rx linkDelay) {
	if d.Latency <= 0 {
		return linkDelay{}, linkDelay{}
	}
	return linkDelay{}, linkDelay{Latency: d.Latency, Jitter: min(max(d.Jitter, 0), d.Latency)}
}

// startProxies starts one proxy per member (PeerProxies only) and resets
// the delays.
func (c *Cluster) startProxies() error {
	if !c.cfg.PeerProxies {
		return nil
	}
	c.mu.RLock()
	type ports struct{ from, to int }
	pp := make([]ports, len(c.members))
	for i, m := range c.members {
		pp[i] = ports{m.peerPort, m.listenPort}
	}
	c.mu.RUnlock()
	proxies := make([]*peerProxy, len(pp))
	for i, p := range pp {
		px, err := startPeerProxy(c.logger.With(zap.String("proxy", c.names[i])), c.cfg.Host, p.from, p.to)
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
	c.delays = make([]linkDelay, len(proxies))
	c.mu.Unlock()
	return nil
}

// closeProxies closes every proxy. The members must be stopped first: a
// proxy's Close waits for its connections, which end when the member's end
// is closed.
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

// SetDelay slows every peer link into member name: with etcd's one
// advertised peer URL per member, the delay belongs to the destination
// member, not to a pair (see the package doc for what that delays in Raft
// terms). latency 0 removes it. Jitter is capped at latency; pkg/proxy draws
// it once per call, so the link gets a fixed latency in
// [latency-jitter, latency+jitter] until the next SetDelay. The delay lasts
// across Crash/Restart of the member. ErrNoProxies without Config.PeerProxies.
func (c *Cluster) SetDelay(name string, latency, jitter time.Duration) error {
	i, err := c.index(name)
	if err != nil {
		return err
	}
	if latency < 0 || jitter < 0 {
		return fmt.Errorf("%w: negative delay %v±%v on %s", ErrInvalidLink, latency, jitter, name)
	}
	if !c.cfg.PeerProxies {
		return ErrNoProxies
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usableLocked(); err != nil {
		return err
	}
	if c.proxies == nil {
		return ErrClosed
	}
	d := linkDelay{Latency: latency, Jitter: min(jitter, latency)}
	c.proxies[i].setDelay(d)
	c.delays[i] = d
	return nil
}

// Delays returns the latency set with SetDelay on each member's incoming
// links (0: none), by member name; nil when PeerProxies is off.
func (c *Cluster) Delays() map[string]time.Duration {
	if !c.cfg.PeerProxies {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]time.Duration, len(c.members))
	for i, m := range c.members {
		out[m.name] = c.delays[i].Latency
	}
	return out
}
