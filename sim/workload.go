package sim

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/lockserver"
	"github.com/locksim/locksim/sim/clients"
)

// newClient builds client-(i+1): it locks resource i mod len(resources), so
// contention per resource is fixed by the topology, and it reaches the
// balancer (the owner of the virtual address, with several) through the
// network emulator.
func (sb *Sandbox) newClient(i int, baseURL string) *simClient {
	name := component.Name(component.Client, i+1)
	tr := &http.Transport{
		DialContext:         sb.clientDialer(name),
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	w := sb.cfg.Workload
	c := clients.New(clients.Config{
		Name:     name,
		Resource: w.Resources[i%len(w.Resources)],
		Lock: &lockserver.Client{
			BaseURL:  baseURL,
			HTTP:     &http.Client{Transport: tr},
			ClientID: name,
			APIKey:   sb.keyOf(name),
		},
		Protected: sb.resource,
		Recorder:  sb.rec,
		Cycle: clients.Cycle{
			TTL: w.TTL, Wait: w.Wait, Hold: w.Hold, Think: w.Think, Cycles: w.Cycles,
			Grace: sb.cfg.EtcdTimeout + 2*time.Second,
		},
		OnPhase:  sb.triggers.reached,
		Stopping: sb.draining.Load,
	})
	return &simClient{Client: c, tr: tr}
}

// StartWorkload starts the simulated clients. They run until StopWorkload,
// Close, ctx ends, or they finish their cycles.
func (sb *Sandbox) StartWorkload(ctx context.Context) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.workload != nil || sb.closed || sb.cfg.Workload.Disabled {
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	sb.workload = cancel
	if sb.clients == nil {
		for i := range sb.cfg.Clients {
			sb.clients = append(sb.clients, sb.newClient(i, "http://"+sb.entry))
		}
	}
	for _, c := range sb.clients {
		sb.workerWG.Go(func() { c.Run(wctx) })
	}
}

// WaitWorkload blocks until every client has finished its cycles or ctx ends.
func (sb *Sandbox) WaitWorkload(ctx context.Context) error {
	done := make(chan struct{})
	go func() { sb.workerWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DrainWorkload asks every client to stop after the cycle it is in (so no
// operation is cut short and left with an unknown outcome) and waits for
// them until ctx ends; then it stops them the hard way.
func (sb *Sandbox) DrainWorkload(ctx context.Context) {
	sb.draining.Store(true)
	_ = sb.WaitWorkload(ctx)
	sb.StopWorkload()
}

// StopWorkload stops the clients and waits for them. Paused clients are
// resumed first so that nothing stays frozen.
func (sb *Sandbox) StopWorkload() {
	sb.mu.Lock()
	cancel := sb.workload
	sb.workload = nil
	cs := sb.clients
	sb.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	for _, c := range cs {
		c.Resume()
	}
	sb.workerWG.Wait()
	for _, c := range cs {
		c.tr.CloseIdleConnections()
	}
}

// Clients returns a snapshot of every simulated client.
func (sb *Sandbox) Clients() []clients.State {
	sb.mu.Lock()
	cs := sb.clients
	sb.mu.Unlock()
	out := make([]clients.State, len(cs))
	for i, c := range cs {
		out[i] = c.State()
	}
	return out
}

func (sb *Sandbox) clientByName(name string) (*simClient, error) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	for _, c := range sb.clients {
		if c.Name() == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownNode, name)
}
