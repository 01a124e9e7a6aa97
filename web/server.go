package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

//go:embed assets
var assets embed.FS

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	// Listen is the TCP address to serve on. Default "127.0.0.1:8080"; port 0
	// picks a free port (see Addr).
	Listen string
	// ControlToken, when set, is required as "Authorization: Bearer <token>"
	// on POST /api/control; the page is read-only until it is entered.
	ControlToken string
	// AllowedOrigins lists extra websocket/control origins
	// ("http://host:port") besides the server's own host. "*" allows any.
	AllowedOrigins []string
	// MaxViewers caps concurrent websocket viewers. Default 64.
	MaxViewers int
	// SendInterval bounds the update rate: frames arriving within one
	// interval are coalesced into one message. Default 100ms.
	SendInterval time.Duration
	// ViewerBuffer is how many messages may queue for one viewer before it
	// is dropped as slow. Default 16.
	ViewerBuffer int
	// WriteTimeout is how long one websocket write may take before the
	// viewer is dropped as slow. Default 2s.
	WriteTimeout time.Duration
	// MaxFrames caps the frames kept for GET /api/frames, the scrub
	// slider's past (oldest go first). Default 12000 (20 minutes at 10
	// frames a second).
	MaxFrames int
	// MaxFrameBytes caps the same frames by their size, so that a long,
	// busy session stays in flat memory. Default 16 MiB: about 20 minutes of
	// `make run`, 2 minutes of a busy sandbox (80 acquires a second).
	MaxFrameBytes int
	// Scenarios lists the catalogue for the picker. Default: none.
	Scenarios func() []ScenarioInfo
	// HistoryHTML renders porcupine's view of the history so far. Default:
	// RunDir/history.html if it exists, else 404.
	HistoryHTML func() ([]byte, error)
	// RunDir optionally names a finished run's folder; its frames.jsonl is
	// loaded for replay (and served before the live frames, if any).
	RunDir string
	// ExportName is the scenario name used by GET /api/export. Default
	// "recorded".
	ExportName string
	// Export writes the commands carried out so far as a scenario file
	// (GET /api/export). Nil: the export answers 404.
	Export func(name string, cmds []TimedCommand) []byte
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *Config) fill() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.MaxViewers <= 0 {
		c.MaxViewers = 64
	}
	if c.SendInterval <= 0 {
		c.SendInterval = 100 * time.Millisecond
	}
	if c.ViewerBuffer <= 0 {
		c.ViewerBuffer = 16
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 2 * time.Second
	}
	if c.MaxFrames <= 0 {
		c.MaxFrames = 12000
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = 16 << 20
	}
	if c.ExportName == "" {
		c.ExportName = "recorded"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Server serves the visualizer: the page, its websocket, the control API
// and the replay log.
type Server struct {
	cfg Config
	src Source
	ctl Controller
	hub *hub

	mu       sync.Mutex
	ln       net.Listener
	http     *http.Server
	cancel   context.CancelFunc
	started  bool
	closed   bool
	commands []TimedCommand

	wg sync.WaitGroup // producer, http server, viewers
}

// New returns a server for src and ctl. src may be nil when cfg.RunDir
// names a finished run to replay; ctl may be nil for a read-only server.
func New(cfg Config, src Source, ctl Controller) (*Server, error) {
	cfg.fill()
	if src == nil && cfg.RunDir == "" {
		return nil, errors.New("web: need a source or a run directory")
	}
	s := &Server{cfg: cfg, src: src, ctl: ctl}
	s.hub = newHub(src, cfg.SendInterval, cfg.ViewerBuffer, cfg.MaxFrames, cfg.MaxFrameBytes, cfg.Now)
	if cfg.RunDir != "" {
		f, err := os.Open(filepath.Join(cfg.RunDir, "frames.jsonl"))
		if err != nil {
			return nil, fmt.Errorf("web: open run: %w", err)
		}
		frames, err := ReadFramesJSONL(f)
		_ = f.Close()
		if err != nil {
			return nil, err
		}
		if err := s.hub.load(frames); err != nil {
			return nil, fmt.Errorf("web: load run: %w", err)
		}
	}
	return s, nil
}

// Start listens and serves until ctx ends or Close is called.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return errors.New("web: already started")
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("web: listen: %w", err)
	}
	s.started = true
	s.ln = ln
	ctx, s.cancel = context.WithCancel(ctx)
	if s.src != nil {
		frames, cancel := s.src.Subscribe()
		_ = s.hub.record(s.src.Frame())
		s.wg.Go(func() {
			defer cancel()
			s.hub.run(ctx, frames)
		})
	}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	s.wg.Go(func() { _ = s.http.Serve(ln) })
	s.wg.Go(func() {
		<-ctx.Done()
		s.hub.closeAll()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.http.Shutdown(sctx)
		_ = s.http.Close()
	})
	return nil
}

// Close stops serving, disconnects every viewer and returns when all of the
// server's goroutines are gone. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
	return nil
}

// Addr is the address the server listens on ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL is the page's address ("" before Start).
func (s *Server) URL() string {
	if a := s.Addr(); a != "" {
		return "http://" + a + "/"
	}
	return ""
}

// Stats reports viewers, dropped viewers and messages sent.
func (s *Server) Stats() Stats {
	return Stats{
		Viewers:    s.hub.count(),
		Dropped:    s.hub.dropped.Load(),
		FramesSent: s.hub.sent.Load(),
		Recorded:   len(s.hub.frames()),
	}
}

// Commands returns the control commands carried out so far, with their
// sandbox times.
func (s *Server) Commands() []TimedCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]TimedCommand(nil), s.commands...)
}

// Handler returns the server's HTTP handler (Start serves it).
func (s *Server) Handler() http.Handler {
	static, _ := fs.Sub(assets, "assets")
	mux := http.NewServeMux()
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	})
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.HandleFunc("POST /api/control", s.serveControl)
	mux.HandleFunc("GET /api/info", s.serveInfo)
	mux.HandleFunc("GET /api/scenarios", s.serveScenarios)
	mux.HandleFunc("GET /api/frames", s.serveFrames)
	mux.HandleFunc("GET /api/export", s.serveExport)
	mux.HandleFunc("GET /api/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Stats()) })
	mux.HandleFunc("GET /history.html", s.serveHistory)
	return securityHeaders(mux)
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// originAllowed reports whether a browser request from origin may use the
// websocket or the control API: no Origin (not a browser), the server's own
// host, or one of cfg.AllowedOrigins.
func originAllowed(origin, host string, allowed []string) bool {
	if origin == "" {
		return true
	}
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(strings.TrimSuffix(a, "/"), origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, host)
}

// authorized reports whether the request carries the control token (always
// true when no token is configured).
func authorized(r *http.Request, token string) bool {
	if token == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

type controlResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	YAML  string `json:"yaml,omitempty"`
}

func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	if !originAllowed(r.Header.Get("Origin"), r.Host, s.cfg.AllowedOrigins) || !authorized(r, s.cfg.ControlToken) {
		writeJSON(w, http.StatusForbidden, controlResult{Error: ErrForbidden.Error()})
		return
	}
	var c Command
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		writeJSON(w, http.StatusBadRequest, controlResult{Error: fmt.Sprintf("%v: %v", ErrBadCommand, err)})
		return
	}
	if err := c.Validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, controlResult{Error: err.Error()})
		return
	}
	if c.Action == ActionExport {
		if s.cfg.Export == nil {
			writeJSON(w, http.StatusNotFound, controlResult{Error: "web: this server exports nothing"})
			return
		}
		writeJSON(w, http.StatusOK, controlResult{OK: true, YAML: string(s.cfg.Export(s.cfg.ExportName, s.Commands()))})
		return
	}
	if s.ctl == nil {
		writeJSON(w, http.StatusServiceUnavailable, controlResult{Error: ErrNoController.Error()})
		return
	}
	at := s.hub.sinceStart()
	if err := s.ctl.Do(r.Context(), c); err != nil {
		status := http.StatusUnprocessableEntity
		if errors.Is(err, ErrBadCommand) {
			status = http.StatusBadRequest
		}
		writeJSON(w, status, controlResult{Error: err.Error()})
		return
	}
	s.mu.Lock()
	s.commands = append(s.commands, TimedCommand{At: at, Command: c})
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, controlResult{OK: true})
}

type info struct {
	ControlRequired bool `json:"controlRequired"`
	Controllable    bool `json:"controllable"`
	Live            bool `json:"live"`
}

func (s *Server) serveInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, info{
		ControlRequired: s.cfg.ControlToken != "",
		Controllable:    s.ctl != nil,
		Live:            s.src != nil,
	})
}

func (s *Server) serveScenarios(w http.ResponseWriter, r *http.Request) {
	list := []ScenarioInfo{}
	if s.cfg.Scenarios != nil {
		list = append(list, s.cfg.Scenarios()...)
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) serveFrames(w http.ResponseWriter, r *http.Request) {
	frames := s.hub.frames()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("["))
	for i, f := range frames {
		if i > 0 {
			_, _ = w.Write([]byte(",\n"))
		}
		_, _ = w.Write(f)
	}
	_, _ = w.Write([]byte("]\n"))
}

func (s *Server) serveExport(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Export == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+s.cfg.ExportName+`.yaml"`)
	_, _ = w.Write(s.cfg.Export(s.cfg.ExportName, s.Commands()))
}

func (s *Server) serveHistory(w http.ResponseWriter, r *http.Request) {
	var page []byte
	var err error
	switch {
	case s.cfg.HistoryHTML != nil:
		page, err = s.cfg.HistoryHTML()
	case s.cfg.RunDir != "":
		page, err = os.ReadFile(filepath.Join(s.cfg.RunDir, "history.html"))
	default:
		err = os.ErrNotExist
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		http.Error(w, "no history yet", http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// porcupine's page is self-contained but uses inline scripts and styles.
	w.Header().Set("Content-Security-Policy", "default-src 'self' 'unsafe-inline' data:; frame-ancestors 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(page)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
