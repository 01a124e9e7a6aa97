package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/loadbalancer"
	"github.com/locksim/locksim/lockserver"
)

// balancerPair is two of our balancers in front of the same lock servers,
// electing a master by VRRP (balancer-1 at priority 110, balancer-2 at
// 100) and sharing one virtual address, as in a sandbox with two
// balancers but without its network emulator.
type balancerPair struct {
	vip      *loadbalancer.VirtualAddress
	backends []string
	interval time.Duration
	slots    [2]*pairSlot
}

type pairSlot struct {
	name             string
	priority         int
	addr, advertAddr string
	lb               *loadbalancer.Balancer
	node             *loadbalancer.Node
}

func newBalancerPair(ctx context.Context, backends []string, interval time.Duration) (p *balancerPair, err error) {
	p = &balancerPair{backends: backends, interval: interval, vip: loadbalancer.NewVirtualAddress(loadbalancer.VirtualConfig{})}
	defer func() {
		if err != nil {
			_ = p.Close()
		}
	}()
	if err := p.vip.Start(ctx); err != nil {
		return nil, err
	}
	for i, name := range component.Names(component.Balancer, 2) {
		p.slots[i] = &pairSlot{name: name, priority: 110 - 10*i, addr: "127.0.0.1:0", advertAddr: "127.0.0.1:0"}
		if err := p.start(ctx, i); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// start starts balancer i (its proxy and its node) on its addresses and
// tells both nodes where the other listens.
func (p *balancerPair) start(ctx context.Context, i int) error {
	s := p.slots[i]
	lb, err := loadbalancer.New(loadbalancer.Config{Listen: s.addr, Backends: p.backends, HealthInterval: 2 * time.Second})
	if err != nil {
		return err
	}
	if err := lb.Start(ctx); err != nil {
		return err
	}
	s.lb, s.addr = lb, lb.Addr()
	node, err := loadbalancer.NewNode(loadbalancer.NodeConfig{
		RouterConfig: loadbalancer.RouterConfig{Name: s.name, Priority: s.priority, Interval: p.interval},
		Listen:       s.advertAddr, Serve: s.addr, VIP: p.vip,
	})
	if err == nil {
		err = node.Start(ctx)
	}
	if err != nil {
		return err
	}
	s.node, s.advertAddr = node, node.AdvertAddr()
	peers := map[string]string{}
	for _, o := range p.slots {
		if o != nil {
			peers[o.name] = o.advertAddr
		}
	}
	for _, o := range p.slots {
		if o != nil && o.node != nil {
			o.node.SetPeers(peers)
		}
	}
	return nil
}

// crash stops balancer i abruptly: no goodbye, its claim stays.
func (p *balancerPair) crash(i int) error {
	s := p.slots[i]
	err := errors.Join(s.node.Close(), s.lb.Close())
	s.node, s.lb = nil, nil
	return err
}

// awaitOwner waits until name is master and owns the virtual address.
func (p *balancerPair) awaitOwner(ctx context.Context, name string, limit time.Duration) error {
	return retryUntil(ctx, limit, func() error {
		if owner, _ := p.vip.Owner(); owner != name {
			return fmt.Errorf("bench: the virtual address is %q's, not %s's", owner, name)
		}
		return nil
	})
}

func (p *balancerPair) Close() error {
	var errs []error
	for _, s := range p.slots {
		if s != nil && s.node != nil {
			errs = append(errs, s.node.Close())
		}
		if s != nil && s.lb != nil {
			errs = append(errs, s.lb.Close())
		}
	}
	return errors.Join(append(errs, p.vip.Close())...)
}

// balancerFailover crashes the master of a balancer pair trials times and
// measures the time from the crash to the first successful acquire+release
// through the virtual address. A new attempt starts every failoverProbe,
// each on a fresh connection resolved to the address's owner at connect
// time (as a simulated client's), so the result is when the service works
// again. The backup takes over a master-down interval (3 x interval + skew)
// after the last advert it heard, so the crash lands at a different point
// of the advert interval in each trial, spread evenly (a crash right after
// an advert is the worst case: the whole master-down interval). Between
// trials the crashed master is restarted and preempts.
func (env *benchEnv) balancerFailover(ctx context.Context, name string, interval time.Duration, trials int) (Row, error) {
	backends := make([]string, len(env.servers))
	for i, s := range env.servers {
		backends[i] = s.URL()
	}
	p, err := newBalancerPair(ctx, backends, interval)
	if err != nil {
		return Row{}, err
	}
	defer p.Close()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true, DialContext: p.vip.Dialer((&net.Dialer{}).DialContext)}
	defer tr.CloseIdleConnections()
	c := &lockserver.Client{BaseURL: p.vip.URL(), HTTP: &http.Client{Transport: tr}, ClientID: "balancer-failover"}
	run := env.seq.Add(1)
	var attempt atomic.Int64
	try := func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		key := fmt.Sprintf("lbfailover/%d/%d", run, attempt.Add(1))
		g, err := c.Acquire(actx, key, 5*time.Second, 0)
		if err != nil {
			return err
		}
		return c.Release(actx, key, g.LockToken)
	}
	limit := 20*interval + 10*time.Second
	var got []time.Duration
	for k := range trials {
		if err := p.awaitOwner(ctx, "balancer-1", limit); err != nil {
			return Row{}, err
		}
		if _, err := firstSuccess(ctx, 10*time.Second, try); err != nil {
			return Row{}, fmt.Errorf("bench: balancer failover: path not ready before crash: %w", err)
		}
		// balancer-1 has just advertised (it claimed the address): crash it
		// k/trials of an interval later.
		sleepCtx(ctx, time.Duration(k)*interval/time.Duration(trials))
		crashed := make(chan error, 1)
		go func() { crashed <- p.crash(0) }()
		d, err := firstSuccess(ctx, limit, try)
		if cerr := <-crashed; cerr != nil {
			return Row{}, cerr
		}
		if err != nil {
			return Row{}, fmt.Errorf("bench: balancer failover: no acquire after the master crashed: %w", err)
		}
		got = append(got, d)
		if err := p.start(ctx, 0); err != nil {
			return Row{}, err
		}
	}
	down, _ := loadbalancer.NewRouter(loadbalancer.RouterConfig{Name: "balancer-2", Priority: 100, Interval: interval})
	return Row{Name: name, Concurrency: 1, Keys: KeysDistinct, Cycles: int64(len(got)),
		P50Ms: Percentile(got, 50), P95Ms: Percentile(got, 95), P99Ms: Percentile(got, 100),
		Note: fmt.Sprintf("balancer master crash -> first successful acquire+release through the virtual address; adverts every %v, backup's master-down %v; %d trials, p50 = median, p99 = max",
			interval, down.MasterDownInterval().Round(time.Millisecond), len(got))}, nil
}

// startBalancerProc runs our balancer as its own process in front of
// backends, `exe serve balancer --mode mode` with the design's round robin
// and 2 s health checks, as haproxy runs. The address is the one on the
// "listening on URL" line that `locksim serve` prints on stdout once it
// accepts connections.
func startBalancerProc(ctx context.Context, exe, mode string, backends []string) (*childProc, error) {
	h := &childProc{done: make(chan struct{})}
	h.cmd = exec.Command(exe, "serve", "balancer", "--mode", mode, "--backends", strings.Join(backends, ","),
		"--listen", "127.0.0.1:0", "--health-interval", "2s", "--log-level", "warn")
	h.cmd.Stderr = &h.out
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: balancer process: %w", err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				select {
				case urls <- u:
				default:
				}
			}
		}
		_ = h.cmd.Wait() // after stdout is drained, as exec requires
		close(h.done)
	}()
	limit := time.NewTimer(20 * time.Second)
	defer limit.Stop()
	select {
	case h.url = <-urls:
	case <-h.done:
		err = fmt.Errorf("bench: balancer process exited: %s", strings.TrimSpace(h.output()))
	case <-limit.C:
		err = errors.New("bench: balancer process printed no listening line within 20s")
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err == nil {
		err = h.awaitReady(ctx)
	}
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	return h, nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
