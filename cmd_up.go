package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/locksim/locksim/lockserver"
	"github.com/locksim/locksim/sim"
	"github.com/locksim/locksim/web"
)

func (m *Main) up(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	var (
		balancer    = fs.String("balancer", "127.0.0.1:0", "balancer listen address (port 0 = any free port)")
		lockServers = fs.Int("lock-servers", 3, "number of lock servers (1-16)")
		clients     = fs.Int("clients", 3, "number of simulated clients (0 = none, serve the API only)")
		policy      = fs.String("policy", "round-robin", "balancer policy: round-robin or least-connections")
		resources   = fs.String("resources", "order:12345", "comma-separated resource ids the clients lock")
		ttl         = fs.Duration("ttl", 2*time.Second, "lock TTL the clients ask for")
		wait        = fs.Duration("wait", time.Second, "how long a client's acquire may block")
		hold        = fs.Duration("hold", 50*time.Millisecond, "time a client holds the lock between read and write")
		think       = fs.Duration("think", 100*time.Millisecond, "pause between a client's cycles")
		unfenced    = fs.Bool("unfenced", false, "the protected resource does not check fencing tokens")
		pace        = fs.String("pace", "fast", "fast (Raft tick 10ms, election 100ms) or classroom (100ms/1000ms, long TTLs, slow clients)")
		etcdLog     = fs.String("etcd-log", "", "append etcd's logs to this file (default: discarded)")
		dataDir     = fs.String("data-dir", "", "where etcd keeps its data (default: a temporary dir removed on exit)")
		interval    = fs.Duration("status-every", time.Second, "how often to print the status line (0 = never)")
		webAddr     = fs.String("web", "127.0.0.1:8080", "serve the visualizer here (port 0 = any free port; \"\" or \"off\" = no web UI)")
		etcdURLs    = fs.String("etcd", "", "comma-separated client URLs of an external etcd cluster to use instead of the embedded members (member faults are then unavailable)")
		authFile    = fs.String("auth-file", "", "API keys, one \"KEY CLIENT_ID\" per line: the lock service then requires Authorization: Bearer KEY (simulated clients get keys of their own)")
		rateLimit   = fs.Float64("rate-limit", 0, "per-client requests per second at each lock server (0 = unlimited; over it: 429)")
		token       = fs.String("control-token", "", "when set, the page's controls need this token (?token=...); everyone else is a read-only viewer")
	)
	if err := fs.Parse(args); err != nil {
		return exitBadInput
	}
	if fs.NArg() > 0 {
		return m.errorf("up: unexpected argument %q", fs.Arg(0))
	}
	var keys map[string]string
	if *authFile != "" {
		f, err := os.Open(*authFile)
		if err != nil {
			return m.errorf("up: --auth-file: %v", err)
		}
		keys, err = lockserver.ParseAPIKeys(f, *authFile)
		f.Close()
		if err != nil {
			return m.errorf("up: %v", err)
		}
	}
	cfg := sim.Config{
		ExternalEtcd:   splitList(*etcdURLs),
		APIKeys:        keys,
		RateLimit:      *rateLimit,
		LockServers:    *lockServers,
		Clients:        *clients,
		Policy:         *policy,
		BalancerListen: *balancer,
		Unfenced:       *unfenced,
		EtcdLog:        *etcdLog,
		DataDir:        *dataDir,
		Workload: sim.Workload{
			Resources: splitList(*resources),
			TTL:       *ttl,
			Wait:      *wait,
			Hold:      *hold,
			Think:     *think,
			Disabled:  *clients == 0,
		},
	}
	switch *pace {
	case "fast":
	case "classroom":
		cfg.Pace, cfg.TickMs, cfg.ElectionMs = "classroom", 100, 1000
		cfg.Workload.TTL = max(cfg.Workload.TTL, 10*time.Second)
		cfg.Workload.Wait = max(cfg.Workload.Wait, 5*time.Second)
		cfg.Workload.Hold = max(cfg.Workload.Hold, 2*time.Second)
		cfg.Workload.Think = max(cfg.Workload.Think, time.Second)
	default:
		return m.errorf("up: --pace must be fast or classroom, got %q", *pace)
	}
	if *clients == 0 {
		cfg.Clients = 0
	}
	sb, err := sim.New(cfg)
	if err != nil {
		return m.errorf("up: %v", err)
	}
	// Fail on a taken web port before booting anything.
	withWeb := *webAddr != "" && *webAddr != "off"
	if withWeb {
		if err := checkListen(*webAddr); err != nil {
			return m.errorf("up: --web %s: %v", *webAddr, err)
		}
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = sb.Start(startCtx)
	cancel()
	if err != nil {
		fmt.Fprintf(m.Stderr, "locksim: up: %v\n", err)
		_ = sb.Close()
		return exitFailed
	}
	defer func() {
		fmt.Fprintln(m.Stderr, "locksim: shutting down")
		if err := sb.Close(); err != nil {
			fmt.Fprintf(m.Stderr, "locksim: shutdown: %v\n", err)
		}
	}()
	addrs := sb.Addresses()
	var uiURL string
	if withWeb {
		view := sim.NewWeb(sb, sim.WebConfig{})
		srv, err := web.New(web.Config{
			Listen:       *webAddr,
			ControlToken: *token,
			Scenarios:    sim.WebScenarios,
			HistoryHTML:  view.HistoryHTML,
			ExportName:   "recorded",
		}, view, view)
		if err == nil {
			err = srv.Start(ctx)
		}
		if err != nil {
			fmt.Fprintf(m.Stderr, "locksim: up: web UI: %v\n", err)
			return exitFailed
		}
		if err := view.Start(ctx); err != nil {
			fmt.Fprintf(m.Stderr, "locksim: up: web UI: %v\n", err)
			return exitFailed
		}
		defer view.Close()
		defer srv.Close()
		uiURL = srv.URL()
	}
	fmt.Fprintf(m.Stdout, "locksim is up (pace %s)\n", sb.Config().Pace)
	if uiURL != "" {
		fmt.Fprintf(m.Stdout, "  web UI       %s   <- open in a browser\n", uiURL)
	}
	fmt.Fprintf(m.Stdout, "  balancer     %s   <- point clients and curl here\n", addrs.Balancer)
	for _, name := range sortedKeys(addrs.LockServers) {
		fmt.Fprintf(m.Stdout, "  %-12s %s\n", name, addrs.LockServers[name])
	}
	for _, name := range sortedKeys(addrs.Etcd) {
		fmt.Fprintf(m.Stdout, "  %-12s %s\n", name, addrs.Etcd[name])
	}
	fmt.Fprintf(m.Stdout, "try: curl -s -XPOST %s/locks/acquire -H 'Content-Type: application/json' -d '{\"resourceId\":\"demo\",\"ttl\":10,\"clientId\":\"me\"}'\n", addrs.Balancer)
	if m.Ready != nil {
		m.Ready(addrs)
	}
	if m.ReadyUI != nil && uiURL != "" {
		m.ReadyUI(uiURL)
	}
	sb.StartWorkload(ctx)

	var tick <-chan time.Time
	if *interval > 0 {
		t := time.NewTicker(*interval)
		defer t.Stop()
		tick = t.C
	}
	prev := sb.Status()
	for {
		select {
		case <-ctx.Done():
			return exitOK
		case <-tick:
			cur := sb.Status()
			fmt.Fprintln(m.Stdout, sim.StatusLine(prev, cur))
			prev = cur
		}
	}
}

// checkListen reports whether addr can be listened on now.
func checkListen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
