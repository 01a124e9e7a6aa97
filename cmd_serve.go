package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/locksim/locksim/loadbalancer"
	"github.com/locksim/locksim/lockserver"
)

// ListeningPrefix starts the one line `serve` prints on stdout once it
// accepts connections: "listening on http://HOST:PORT".
const ListeningPrefix = "listening on "

const serveUsage = `Usage:
  locksim serve lockserver --etcd URLS --listen ADDR [flags]
  locksim serve balancer --backends URLS --listen ADDR [flags]

Runs one component of the lock service as its own process, against an
etcd cluster it did not start. Run "locksim serve lockserver -h" or
"locksim serve balancer -h" for the flags.
`

// serve dispatches `locksim serve lockserver|balancer`.
func (m *Main) serve(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, serveUsage)
		return exitBadInput
	}
	switch args[0] {
	case "lockserver":
		return m.serveLockServer(ctx, args[1:])
	case "balancer":
		return m.serveBalancer(ctx, args[1:])
	case "-h", "--help", "help":
		fmt.Fprint(m.Stdout, serveUsage)
		return exitOK
	default:
		return m.errorf("serve: unknown component %q (want lockserver or balancer)", args[0])
	}
}

// parseServeFlags parses args; ok is false when the command must end with
// code: -h prints the flags on stdout (exit 0), a bad flag is one line on
// stderr (exit 2).
func (m *Main) parseServeFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(m.Stdout, "Usage: locksim %s [flags]\n\nFlags:\n", fs.Name())
		fs.SetOutput(m.Stdout)
		fs.PrintDefaults()
		return exitOK, false
	case err != nil:
		return m.errorf("%s: %v", fs.Name(), err), false
	}
	return 0, true
}

// commonFlags are the flags both components take.
type commonFlags struct {
	listen       *string
	logFormat    *string
	logLevel     *string
	drainTimeout *time.Duration
}

func addCommonFlags(fs *flag.FlagSet) commonFlags {
	return commonFlags{
		listen:       fs.String("listen", "", "address to serve on, e.g. 127.0.0.1:8081 (port 0 = any free port; required)"),
		logFormat:    fs.String("log-format", "text", "log format on stderr: text or json"),
		logLevel:     fs.String("log-level", "info", "log level: debug, info, warn or error"),
		drainTimeout: fs.Duration("drain-timeout", 10*time.Second, "on SIGTERM/SIGINT, how long in-flight requests may take to finish"),
	}
}

// check validates the common flags and returns the logger.
func (c commonFlags) check(w io.Writer) (*slog.Logger, error) {
	if err := checkListenFlag(*c.listen); err != nil {
		return nil, err
	}
	if *c.drainTimeout <= 0 {
		return nil, fmt.Errorf("--drain-timeout must be positive, got %v", *c.drainTimeout)
	}
	return newLogger(w, *c.logFormat, *c.logLevel)
}

// newLogger builds the slog logger of a serve process.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level must be debug, info, warn or error, got %q", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format must be text or json, got %q", format)
	}
}

// checkListenFlag accepts host:port with a numeric port (host may be empty).
func checkListenFlag(addr string) error {
	if addr == "" {
		return errors.New("--listen is required (e.g. 127.0.0.1:8081)")
	}
	return checkAddrFlag("listen", addr)
}

// checkAddrFlag checks that flag --name is host:port with a numeric port.
func checkAddrFlag(name, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s %q: want HOST:PORT", name, addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("--%s %q: bad port %q", name, addr, port)
	}
	return nil
}

// parseURLs splits a comma-separated list of http://host:port URLs
// (https too when https is true).
func parseURLs(flagName, list string, https bool) ([]string, error) {
	want := "http://HOST:PORT"
	if https {
		want = "http(s)://HOST:PORT"
	}
	urls := splitList(list)
	if len(urls) == 0 {
		return nil, fmt.Errorf("--%s is required (comma-separated %s URLs)", flagName, want)
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || !(u.Scheme == "http" || https && u.Scheme == "https") || u.Host == "" || u.Port() == "" ||
			(u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("--%s: %q is not an %s URL", flagName, raw, want)
		}
	}
	return urls, nil
}

// etcdTLSFlags checks the TLS flags against the etcd URLs and loads the
// files: nil for http:// URLs without TLS flags. https:// URLs need the
// CA (a missing one would fail only as etcd calls timing out); TLS flags
// need https:// URLs (clientv3 would ignore them for http://).
func etcdTLSFlags(endpoints []string, caFile, certFile, keyFile string) (*tls.Config, error) {
	var https int
	for _, ep := range endpoints {
		if strings.HasPrefix(ep, "https://") {
			https++
		}
	}
	flags := caFile != "" || certFile != "" || keyFile != ""
	switch {
	case https > 0 && https < len(endpoints):
		return nil, errors.New("--etcd mixes http:// and https:// URLs: the members serve one or the other")
	case https == 0 && flags:
		return nil, errors.New("--etcd-cacert, --etcd-cert and --etcd-key need https:// --etcd URLs")
	case https == 0:
		return nil, nil
	case caFile == "":
		return nil, errors.New("--etcd has https:// URLs: give --etcd-cacert, the CA certificate that signed the members' certificates")
	case (certFile == "") != (keyFile == ""):
		return nil, errors.New("--etcd-cert and --etcd-key go together")
	}
	pemCA, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--etcd-cacert: %w", err)
	}
	cfg := &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
	if !cfg.RootCAs.AppendCertsFromPEM(pemCA) {
		return nil, fmt.Errorf("--etcd-cacert %s: no PEM certificate in it", caFile)
	}
	if certFile == "" {
		return cfg, nil
	}
	pemCert, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("--etcd-cert: %w", err)
	}
	pemKey, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("--etcd-key: %w", err)
	}
	pair, err := tls.X509KeyPair(pemCert, pemKey)
	if err != nil {
		return nil, fmt.Errorf("--etcd-cert %s and --etcd-key %s: %w", certFile, keyFile, err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return cfg, nil
}

// registerProcessCollectors adds the Go runtime and process metrics, which
// belong only to a process that runs one component.
func registerProcessCollectors(reg *prometheus.Registry) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// serveLockServer is `locksim serve lockserver`. It is long because it is
// the list of its flags, each checked in turn before anything starts.
func (m *Main) serveLockServer(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("serve lockserver", flag.ContinueOnError)
	var (
		common      = addCommonFlags(fs)
		etcd        = fs.String("etcd", "", "etcd client URLs, comma-separated (required), e.g. http://10.0.0.1:2379,http://10.0.0.2:2379; https:// ones need --etcd-cacert")
		etcdCA      = fs.String("etcd-cacert", "", "CA certificate (PEM) that signed the etcd members' certificates: TLS to etcd, with https:// --etcd URLs (etcdctl's --cacert)")
		etcdCert    = fs.String("etcd-cert", "", "client certificate (PEM) for etcd members that require one (--client-cert-auth), with --etcd-key (etcdctl's --cert)")
		etcdKey     = fs.String("etcd-key", "", "private key (PEM) of --etcd-cert (etcdctl's --key)")
		name        = fs.String("name", "lockserver", "name in logs and in the /health body")
		etcdTimeout = fs.Duration("etcd-timeout", 2*time.Second, "bound of each etcd call; a write without an answer by then is outcome_unknown")
		authFile    = fs.String("auth-file", "", `API keys, one "KEY CLIENT_ID" per line (# comments); default: auth off`)
		rateLimit   = fs.Float64("rate-limit", 0, "sustained /locks/ requests per second this server accepts (0 = no limit)")
		recipe      = fs.String("recipe", "locksim", "the lock logic behind the API: locksim (the design's lock server) or etcd-mutex (etcd's concurrency.Mutex recipe, for comparison)")
	)
	if code, ok := m.parseServeFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return m.errorf("serve lockserver: unexpected argument %q", fs.Arg(0))
	}
	switch *recipe {
	case "locksim":
		*recipe = ""
	case lockserver.RecipeMutex:
	default:
		return m.errorf("serve lockserver: --recipe must be locksim or %s, got %q", lockserver.RecipeMutex, *recipe)
	}
	log, err := common.check(m.Stderr)
	if err != nil {
		return m.errorf("serve lockserver: %v", err)
	}
	endpoints, err := parseURLs("etcd", *etcd, true)
	if err != nil {
		return m.errorf("serve lockserver: %v", err)
	}
	if *etcdTimeout <= 0 {
		return m.errorf("serve lockserver: --etcd-timeout must be positive, got %v", *etcdTimeout)
	}
	etcdTLS, err := etcdTLSFlags(endpoints, *etcdCA, *etcdCert, *etcdKey)
	if err != nil {
		return m.errorf("serve lockserver: %v", err)
	}
	if etcdTLS != nil {
		pctx, cancel := context.WithTimeout(ctx, *etcdTimeout)
		err := lockserver.ProbeTLS(pctx, endpoints, etcdTLS)
		cancel()
		if err != nil {
			return m.errorf("serve lockserver: %v (check --etcd-cacert, --etcd-cert and --etcd-key)", err)
		}
	}
	if *rateLimit < 0 {
		return m.errorf("serve lockserver: --rate-limit must be >= 0, got %v", *rateLimit)
	}
	keys, err := readAPIKeys(*authFile)
	if err != nil {
		return m.errorf("serve lockserver: %v", err)
	}
	s, err := lockserver.New(lockserver.Config{
		Name:        *name,
		Endpoints:   endpoints,
		Listen:      *common.listen,
		EtcdTimeout: *etcdTimeout,
		TLS:         etcdTLS,
		APIKeys:     keys,
		RateLimit:   *rateLimit,
		Recipe:      *recipe,
		Logger:      log,
	})
	if err != nil {
		return m.errorf("serve lockserver: %v", err)
	}
	registerProcessCollectors(s.Metrics())
	if err := s.Start(ctx); err != nil {
		log.Error("start failed", "err", err)
		fmt.Fprintf(m.Stderr, "locksim: serve lockserver: %v\n", err)
		_ = s.Close()
		return exitFailed
	}
	log.Info("serving", "component", "lockserver", "name", *name, "addr", s.Addr(),
		"etcd", endpoints, "etcd_tls", etcdTLS != nil, "etcd_client_cert", *etcdCert != "",
		"auth", len(keys) > 0, "rate_limit", *rateLimit)
	fmt.Fprintln(m.Stdout, ListeningPrefix+s.URL())
	return m.drain(ctx, log, *common.drainTimeout, s.Shutdown)
}

// readAPIKeys reads --auth-file; "" is auth off (nil keys).
func readAPIKeys(path string) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--auth-file: %w", err)
	}
	defer f.Close()
	return lockserver.ParseAPIKeys(f, path)
}

func (m *Main) serveBalancer(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("serve balancer", flag.ContinueOnError)
	var (
		common   = addCommonFlags(fs)
		backends = fs.String("backends", "", "lock server URLs, comma-separated (required), e.g. http://10.0.0.5:8081,http://10.0.0.6:8081")
		policy   = fs.String("policy", loadbalancer.PolicyRoundRobin, "round-robin or least-connections")
		mode     = fs.String("mode", loadbalancer.ModeHTTP, "http (per request: retries refused connections, answers outcome_unknown itself) or tcp (per connection, bytes copied unparsed, like HAProxy's mode tcp)")
		admin    = fs.String("admin-listen", "", "also serve /metrics and /balancer/health on this address (HOST:PORT); in tcp mode the only way to reach them")
		interval = fs.Duration("health-interval", 2*time.Second, "time between two health checks (GET /health) of one backend")
		hTimeout = fs.Duration("health-timeout", time.Second, "bound of one health check")
		rise     = fs.Int("rise", 2, "consecutive good checks that bring a down backend up")
		fall     = fs.Int("fall", 3, "consecutive failed checks (or refused connections) that take a backend down")
	)
	if code, ok := m.parseServeFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return m.errorf("serve balancer: unexpected argument %q", fs.Arg(0))
	}
	log, err := common.check(m.Stderr)
	if err != nil {
		return m.errorf("serve balancer: %v", err)
	}
	urls, err := parseURLs("backends", *backends, true)
	if err != nil {
		return m.errorf("serve balancer: %v", err)
	}
	switch {
	case *interval <= 0:
		return m.errorf("serve balancer: --health-interval must be positive, got %v", *interval)
	case *hTimeout <= 0:
		return m.errorf("serve balancer: --health-timeout must be positive, got %v", *hTimeout)
	case *rise < 1 || *fall < 1:
		return m.errorf("serve balancer: --rise and --fall must be at least 1, got %d and %d", *rise, *fall)
	case *mode != loadbalancer.ModeHTTP && *mode != loadbalancer.ModeTCP:
		return m.errorf("serve balancer: --mode must be http or tcp, got %q", *mode)
	}
	if *admin != "" {
		if err := checkAddrFlag("admin-listen", *admin); err != nil {
			return m.errorf("serve balancer: %v", err)
		}
	}
	b, err := loadbalancer.New(loadbalancer.Config{
		Listen:         *common.listen,
		Mode:           *mode,
		AdminListen:    *admin,
		Backends:       urls,
		Policy:         *policy,
		HealthInterval: *interval,
		HealthTimeout:  *hTimeout,
		Rise:           *rise,
		Fall:           *fall,
	})
	if err != nil {
		return m.errorf("serve balancer: %v", err)
	}
	registerProcessCollectors(b.Metrics())
	if err := b.Start(ctx); err != nil {
		log.Error("start failed", "err", err)
		fmt.Fprintf(m.Stderr, "locksim: serve balancer: %v\n", err)
		_ = b.Close()
		return exitFailed
	}
	log.Info("serving", "component", "balancer", "addr", b.Addr(), "mode", *mode, "admin_addr", b.AdminAddr(), "backends", urls, "policy", *policy,
		"health_interval", *interval, "rise", *rise, "fall", *fall)
	fmt.Fprintln(m.Stdout, ListeningPrefix+b.URL())

	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		logBackendChanges(watchCtx, log, b, *interval)
	}()
	code := m.drain(ctx, log, *common.drainTimeout, b.Shutdown)
	stopWatch()
	<-watched
	return code
}

// logBackendChanges logs every backend that goes up or down, checking
// every interval until ctx ends.
func logBackendChanges(ctx context.Context, log *slog.Logger, b *loadbalancer.Balancer, every time.Duration) {
	prev := b.Stats()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := b.Stats()
		for i := range cur {
			switch {
			case prev[i].Up && !cur[i].Up:
				log.Warn("backend down", "backend", cur[i].URL, "last_error", cur[i].LastError)
			case !prev[i].Up && cur[i].Up:
				log.Info("backend up", "backend", cur[i].URL)
			}
		}
		prev = cur
	}
}

// drain waits for ctx (SIGTERM/SIGINT), then shuts the component down
// gracefully within timeout. Exit 0 when everything in flight finished.
func (m *Main) drain(ctx context.Context, log *slog.Logger, timeout time.Duration, shutdown func(context.Context) error) int {
	<-ctx.Done()
	log.Info("shutting down: draining in-flight requests", "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	if err := shutdown(sctx); err != nil {
		log.Error("shutdown was not clean", "err", err, "took", time.Since(start))
		return exitFailed
	}
	log.Info("stopped", "took", time.Since(start))
	return exitOK
}
