package sim

import (
	"context"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/locksim/locksim/lockserver"
)

// heldEvery is how often a heldPoller asks.
const heldEvery = 250 * time.Millisecond

// heldLocks returns who holds each lock: from etcd's record (the Observer)
// for locksim's own lock servers, as GET /locks/{id} last answered for
// others.
func (sb *Sandbox) heldLocks() map[string]lockserver.HeldLock {
	switch {
	case sb.held != nil:
		return sb.held.get()
	case sb.observer != nil:
		return sb.observer.Held()
	}
	return nil
}

// heldPoller asks a running lock server, GET /locks/{id} for every resource
// of the workload, who holds each lock: a lock server that is not
// locksim's own keeps its locks in etcd its own way, so the Observer
// cannot read them, but the API says. It goes around the network
// emulator (it is the viewer's question, not a client's) and skips paused
// servers.
type heldPoller struct {
	sb     *Sandbox
	hc     *http.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	held map[string]lockserver.HeldLock
}

func startHeldPoller(sb *Sandbox) *heldPoller {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	p := &heldPoller{sb: sb, hc: &http.Client{Transport: tr}, cancel: cancel, done: make(chan struct{}), held: map[string]lockserver.HeldLock{}}
	go func() {
		defer close(p.done)
		defer tr.CloseIdleConnections()
		t := time.NewTicker(heldEvery)
		defer t.Stop()
		for {
			p.poll(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// poll asks once, through the running lock servers that are not paused, one
// after another until one answers (one may be cut off from etcd).
func (p *heldPoller) poll(ctx context.Context) {
	var urls []string
	p.sb.mu.Lock()
	for _, s := range p.sb.servers {
		if s.run != nil && !s.paused {
			urls = append(urls, "http://"+s.addr)
		}
	}
	p.sb.mu.Unlock()
	for _, url := range urls {
		if held, ok := p.ask(ctx, url); ok {
			p.mu.Lock()
			p.held = held
			p.mu.Unlock()
			return
		}
	}
	// Nobody answered: keep what was last known.
}

// ask reads every resource of the workload from one lock server.
func (p *heldPoller) ask(ctx context.Context, url string) (map[string]lockserver.HeldLock, bool) {
	c := &lockserver.Client{BaseURL: url, HTTP: p.hc}
	held := map[string]lockserver.HeldLock{}
	for _, r := range p.sb.cfg.Workload.Resources {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		info, err := c.Get(cctx, r)
		cancel()
		if err != nil {
			return nil, false
		}
		if info.Held {
			held[r] = lockserver.HeldLock{Owner: info.OwnerID, FencingToken: info.FencingToken, Since: p.sb.Elapsed(), TTL: max(0, time.Until(info.ExpiresAt))}
		}
	}
	return held, true
}

func (p *heldPoller) get() map[string]lockserver.HeldLock {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.held)
}

func (p *heldPoller) close() {
	p.cancel()
	<-p.done
}
