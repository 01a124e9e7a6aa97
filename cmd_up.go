package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/locksim/locksim/live"
	"github.com/locksim/locksim/lockserver"
	"github.com/locksim/locksim/sim"
	"github.com/locksim/locksim/sim/external"
	"github.com/locksim/locksim/web"
)

// upFlags are `locksim up`'s flags beyond the sandbox's Config.
type upFlags struct {
	web, token string
	interval   time.Duration
}

func (m *Main) up(ctx context.Context, args []string) int {
	cfg, fl, code := m.upConfig(args)
	if code >= 0 {
		return code
	}
	sb, err := sim.New(cfg)
	if err != nil {
		return m.errorf("up: %v", err)
	}
	// Fail on a taken web port before booting anything.
	withWeb := fl.web != "" && fl.web != "off"
	if withWeb {
		if err := checkListen(fl.web); err != nil {
			return m.errorf("up: --web %s: %v", fl.web, err)
		}
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = sb.Start(startCtx)
	cancel()
	if err != nil {
		_ = sb.Close()
		if errors.Is(err, sim.ErrBadLockServer) {
			return m.errorf("up: %s", badLine(err))
		}
		fmt.Fprintf(m.Stderr, "locksim: up: %v\n", err)
		return exitFailed
	}
	defer func() {
		fmt.Fprintln(m.Stderr, "locksim: shutting down")
		if err := sb.Close(); err != nil {
			fmt.Fprintf(m.Stderr, "locksim: shutdown: %v\n", err)
		}
	}()
	var uiURL string
	if withWeb {
		stop, url, err := startView(ctx, sb, fl)
		if err != nil {
			fmt.Fprintf(m.Stderr, "locksim: up: web UI: %v\n", err)
			return exitFailed
		}
		defer stop()
		uiURL = url
	}
	m.printUp(sb, uiURL)
	sb.StartWorkload(ctx)
	m.statusLoop(ctx, sb, fl.interval)
	return exitOK
}

// upConfig parses up's flags into the sandbox's Config; code >= 0 means
// stop with that exit code. Every default is the sandbox's (sim.Defaults).
// It is long because it is the list of up's flags.
func (m *Main) upConfig(args []string) (sim.Config, upFlags, int) {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	d := sim.Defaults()
	var (
		fl          upFlags
		balancer    = fs.String("balancer", d.BalancerListen, "balancer listen address, or the virtual address of --balancers 2+ (port 0 = any free port)")
		balancers   = fs.Int("balancers", d.Balancers, "number of balancers (1-8); 2 or more elect a master by VRRP and share a virtual address")
		advert      = fs.Duration("advert-interval", 0, "VRRP advert interval of --balancers 2+ (default: the pace's, 100ms fast, 1s classroom)")
		noPreempt   = fs.Bool("nopreempt", false, "VRRP: a backup of higher priority does not take over from a lower master (keepalived's nopreempt)")
		lockServers = fs.Int("lock-servers", d.LockServers, "number of lock servers (1-16)")
		clients     = fs.Int("clients", d.Clients, "number of simulated clients (0 = none, serve the API only)")
		policy      = fs.String("policy", d.Policy, "balancer policy: round-robin or least-connections")
		lbMode      = fs.String("balancer-mode", d.BalancerMode, "balancer mode: http (per request) or tcp (per connection, bytes copied unparsed, like HAProxy's mode tcp)")
		resources   = fs.String("resources", strings.Join(d.Workload.Resources, ","), "comma-separated resource ids the clients lock")
		ttl         = fs.Duration("ttl", d.Workload.TTL, "lock TTL the clients ask for")
		wait        = fs.Duration("wait", d.Workload.Wait, "how long a client's acquire may block")
		hold        = fs.Duration("hold", d.Workload.Hold, "time a client holds the lock between read and write")
		think       = fs.Duration("think", d.Workload.Think, "pause between a client's cycles")
		unfenced    = fs.Bool("unfenced", false, "the protected resource does not check fencing tokens")
		pace        = fs.String("pace", d.Pace, "fast (Raft tick 10ms, election 100ms) or classroom (100ms/1000ms, TTL >= 10s, wait >= 5s, hold >= 2s, think >= 1s)")
		etcdLog     = fs.String("etcd-log", "", "append etcd's logs to this file (default: discarded)")
		dataDir     = fs.String("data-dir", "", "where etcd keeps its data (default: a temporary dir removed on exit)")
		etcdURLs    = fs.String("etcd", "", "comma-separated client URLs (http:// only) of an external etcd cluster to use instead of the embedded members (member faults are then unavailable)")
		authFile    = fs.String("auth-file", "", "API keys, one \"KEY CLIENT_ID\" per line: the lock service then requires Authorization: Bearer KEY (simulated clients get keys of their own)")
		rateLimit   = fs.Float64("rate-limit", 0, "per-client requests per second at each lock server (0 = unlimited; over it: 429)")
		lsCmd       = fs.String("lockserver-cmd", "", "run every lock server as its own process of this command line instead of locksim's own: {listen} (host:port to serve on), {name} (lockserver-N), {etcd} (its etcd URLs)")
		lsLogs      = fs.String("lockserver-logs", "", "with --lockserver-cmd: folder for each process's NAME.stdout and NAME.stderr (default: a new temporary folder, kept)")
	)
	fs.DurationVar(&fl.interval, "status-every", time.Second, "how often to print the status line (0 = never)")
	fs.StringVar(&fl.web, "web", "127.0.0.1:8080", "serve the visualizer here (port 0 = any free port; \"\" or \"off\" = no web UI)")
	fs.StringVar(&fl.token, "control-token", "", "when set, the page's controls need this token (?token=...); everyone else is a read-only viewer")
	if err := fs.Parse(args); err != nil {
		return sim.Config{}, fl, exitBadInput
	}
	if fs.NArg() > 0 {
		return sim.Config{}, fl, m.errorf("up: unexpected argument %q", fs.Arg(0))
	}
	for _, u := range splitList(*etcdURLs) {
		if strings.HasPrefix(u, "https://") {
			// TLS to etcd is `serve lockserver`'s (--etcd-cacert ...); the
			// sandbox's clients would fail only as calls timing out.
			return sim.Config{}, fl, m.errorf("up: --etcd %s: up has no TLS to etcd; run the lock servers with `locksim serve lockserver --etcd-cacert ...`", u)
		}
	}
	if *lsCmd != "" {
		if err := external.CheckCommand(*lsCmd); err != nil {
			return sim.Config{}, fl, m.errorf("up: --lockserver-cmd: %v", err)
		}
		if *lsLogs == "" {
			dir, err := os.MkdirTemp("", "locksim-lockservers-")
			if err != nil {
				return sim.Config{}, fl, m.errorf("up: --lockserver-logs: %v", err)
			}
			*lsLogs = dir
		}
	}
	var keys map[string]string
	if *authFile != "" {
		f, err := os.Open(*authFile)
		if err != nil {
			return sim.Config{}, fl, m.errorf("up: --auth-file: %v", err)
		}
		keys, err = lockserver.ParseAPIKeys(f, *authFile)
		f.Close()
		if err != nil {
			return sim.Config{}, fl, m.errorf("up: %v", err)
		}
	}
	return sim.Config{
		ExternalEtcd:   splitList(*etcdURLs),
		APIKeys:        keys,
		RateLimit:      *rateLimit,
		LockServers:    *lockServers,
		Clients:        *clients,
		Policy:         *policy,
		BalancerMode:   *lbMode,
		Balancers:      *balancers,
		AdvertInterval: *advert,
		NoPreempt:      *noPreempt,
		BalancerListen: *balancer,
		Unfenced:       *unfenced,
		EtcdLog:        *etcdLog,
		DataDir:        *dataDir,
		Pace:           *pace,
		LockServerCmd:  *lsCmd,
		LogDir:         *lsLogs,
		// Hours of `up` in flat memory: the page checks the recent past.
		HistoryKeep:      sim.RecentOps,
		EtcdRecordRetain: 10 * time.Minute,
		Workload: sim.Workload{
			Resources: splitList(*resources),
			TTL:       *ttl,
			Wait:      *wait,
			Hold:      *hold,
			Think:     *think,
			Disabled:  *clients == 0,
		},
	}, fl, -1
}

// startView serves the visualizer of sb; stop closes it.
func startView(ctx context.Context, sb *sim.Sandbox, fl upFlags) (stop func(), url string, err error) {
	view := live.New(sb, live.Config{})
	srv, err := web.New(web.Config{
		Listen:       fl.web,
		ControlToken: fl.token,
		Scenarios:    live.Scenarios,
		HistoryHTML:  view.HistoryHTML,
		ExportName:   "recorded",
		Export:       view.Export,
	}, view, view)
	if err == nil {
		err = srv.Start(ctx)
	}
	if err == nil {
		if err = view.Start(ctx); err != nil {
			_ = srv.Close()
		}
	}
	if err != nil {
		_ = view.Close()
		return nil, "", err
	}
	return func() { _ = srv.Close(); _ = view.Close() }, srv.URL(), nil
}

// printUp prints every address, then tells the tests it is ready.
func (m *Main) printUp(sb *sim.Sandbox, uiURL string) {
	addrs := sb.Addresses()
	fmt.Fprintf(m.Stdout, "locksim is up (pace %s)\n", sb.Config().Pace)
	if uiURL != "" {
		fmt.Fprintf(m.Stdout, "  web UI       %s   <- open in a browser\n", uiURL)
	}
	if len(addrs.Balancers) == 0 {
		fmt.Fprintf(m.Stdout, "  balancer     %s   <- point clients and curl here\n", addrs.Balancer)
	} else {
		fmt.Fprintf(m.Stdout, "  virtual IP   %s   <- point clients and curl here (VRRP master: %s)\n", addrs.Balancer, sb.Status().VIPOwner)
		for _, name := range sortedKeys(addrs.Balancers) {
			fmt.Fprintf(m.Stdout, "  %-12s %s\n", name, addrs.Balancers[name])
		}
	}
	for _, name := range sortedKeys(addrs.LockServers) {
		fmt.Fprintf(m.Stdout, "  %-12s %s\n", name, addrs.LockServers[name])
	}
	for _, name := range sortedKeys(addrs.Etcd) {
		fmt.Fprintf(m.Stdout, "  %-12s %s\n", name, addrs.Etcd[name])
	}
	if cmd := sb.Config().LockServerCmd; cmd != "" {
		fmt.Fprintf(m.Stdout, "  lock servers run %q; their output: %s\n", cmd, sb.LogDir())
	}
	fmt.Fprintf(m.Stdout, "try: curl -s -XPOST %s/locks/acquire -H 'Content-Type: application/json' -d '{\"resourceId\":\"demo\",\"ttl\":10,\"clientId\":\"me\"}'\n", addrs.Balancer)
	if m.Ready != nil {
		m.Ready(addrs)
	}
	if m.ReadyUI != nil && uiURL != "" {
		m.ReadyUI(uiURL)
	}
}

// statusLoop prints a status line every interval (none at 0) until ctx ends.
func (m *Main) statusLoop(ctx context.Context, sb *sim.Sandbox, interval time.Duration) {
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	prev := sb.Status()
	for {
		select {
		case <-ctx.Done():
			return
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
