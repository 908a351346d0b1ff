package httpapi

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gather-go/gather/queue"
)

// Defaults for Config.
const (
	DefaultMaxBody   = 64 << 20
	DefaultMaxItems  = 100_000
	DefaultMaxItem   = queue.DefaultMaxPayload
	DefaultMaxWait   = 60 * time.Second
	DefaultResultTTL = 10 * time.Minute
	DefaultMaxPage   = 1000
	// DefaultBodyTimeout is Config.BodyTimeout's default.
	DefaultBodyTimeout = 2 * time.Minute
	// DefaultStreamWriteTimeout is Config.StreamWriteTimeout's default.
	DefaultStreamWriteTimeout = 30 * time.Second
)

// Config configures a Server. Client is required; every other zero field
// means its default.
type Config struct {
	// Client enqueues and awaits; its broker is the one inspected.
	Client *queue.Client
	// Kinds maps the kind names the server accepts to a one-line
	// description. Default nil: any valid name (a worker without the
	// kind's handler fails its tasks with code unknown_kind).
	Kinds map[string]string
	// Disabled maps kinds the server knows but refuses to the reason,
	// given in the 422 (such as exec without an allow-list).
	Disabled map[string]string
	// Queues are the queue names /v1/queues lists when the broker cannot
	// list its queues itself. Default: queue.DefaultQueue.
	Queues []string
	// Token, when set, is required of every request but /healthz and
	// /readyz, as "Authorization: Bearer <token>".
	Token string
	// Hosts are the Host header values accepted, without port, besides
	// localhost, 127.0.0.1 and ::1, when there is no Token: a request for
	// any other host gets 403, so that a web page whose name an attacker
	// rebinds to 127.0.0.1 cannot reach the API (DNS rebinding). With a
	// Token every host is accepted, since such a page cannot send the
	// token. "*" accepts every host. Default: loopback names only.
	Hosts []string
	// MaxBody is the largest request body, in bytes. Default DefaultMaxBody.
	MaxBody int64
	// BodyTimeout is the longest a request may take to send its body;
	// then it gets 400 and its connection is closed. (An http.Server's
	// ReadTimeout would also cut long waits and event streams.) Default
	// DefaultBodyTimeout.
	BodyTimeout time.Duration
	// StreamWriteTimeout is the longest one write of an event stream may
	// wait for a client that does not read; then the stream ends. (An
	// http.Server's WriteTimeout would end every stream after it.)
	// Default DefaultStreamWriteTimeout.
	StreamWriteTimeout time.Duration
	// MaxItems is the most items of one batch. Default DefaultMaxItems.
	MaxItems int
	// MaxItem is the largest item, in bytes of JSON. Default DefaultMaxItem.
	MaxItem int
	// MaxWait clamps the wait a request asks for. Default DefaultMaxWait.
	MaxWait time.Duration
	// ResultTTL is how long a finished batch's outcomes stay in memory
	// after the last request about it. The broker keeps them longer (see
	// its Retention). Default DefaultResultTTL.
	ResultTTL time.Duration
	// Metrics, when set, is served at /metrics.
	Metrics http.Handler
	// Ready, when set, is asked by /readyz besides the drain state.
	Ready func(ctx context.Context) error
	// Logger receives one record per request that failed with a 5xx and
	// the followers' errors. Default: discard.
	Logger *slog.Logger
	// Controls are the global limits, rates and periodic tasks that the
	// program's workers and scheduler run with, shown by GET
	// /v1/controls. Default: none shown.
	Controls Controls
	// UI, when set, serves every request outside /v1/ that no route of
	// the API serves: a web dashboard's pages and streams. Its requests
	// pass the Host check and the cross-origin guard like the API's, but
	// not the token check, since a browser's navigation to a page sends no
	// header: UI serves only public files itself and asks Authenticated
	// before anything else. Default: none (404).
	UI http.Handler
}

// Server is the HTTP API as an http.Handler. It is safe for concurrent
// use. It owns one goroutine per batch it follows; Close stops them. Drain
// makes it refuse new work.
type Server struct {
	client      *queue.Client
	broker      queue.Broker
	kinds       map[string]string
	disabled    map[string]string
	queues      []string
	token       []byte
	hosts       []string
	anyHost     bool
	maxBody     int64
	bodyTime    time.Duration
	streamWrite time.Duration
	maxItems    int
	maxItem     int
	maxWait     time.Duration
	ttl         time.Duration
	metrics     http.Handler
	ui          http.Handler
	controls    Controls
	ready       func(ctx context.Context) error
	log         *slog.Logger
	mux         *http.ServeMux
	csrf        *http.CrossOriginProtection
	guarded     http.Handler // csrf around mux
	guardedUI   http.Handler // csrf around ui, when there is one

	ctx      context.Context // ends with Close: the followers' context
	cancel   context.CancelFunc
	draining atomic.Bool
	drainCh  chan struct{}
	drainMu  sync.Once
	wg       sync.WaitGroup

	mu        sync.Mutex
	trackers  map[string]*tracker
	lastSweep time.Time
	closed    bool
	mounted   []route   // routes of mounted services
	services  []Service // mounted services, drained with the server
}

// route is one route the server serves; the OpenAPI test reads the list.
type route struct {
	method, pattern string
	h               func(w http.ResponseWriter, r *http.Request) error
}

func (s *Server) routes() []route {
	return []route{
		{"GET", "/healthz", s.healthz},
		{"GET", "/readyz", s.readyz},
		{"GET", "/metrics", s.serveMetrics},
		{"GET", "/v1/openapi.json", s.openapi},
		{"POST", "/v1/batches", s.postBatch},
		{"GET", "/v1/batches", s.listBatches},
		{"GET", "/v1/batches/{id}", s.getBatch},
		{"GET", "/v1/batches/{id}/events", s.events},
		{"POST", "/v1/batches/{id}/cancel", s.cancelBatch},
		{"GET", "/v1/queues", s.listQueues},
		{"POST", "/v1/queues/{name}/pause", s.pauseQueue},
		{"POST", "/v1/queues/{name}/resume", s.resumeQueue},
		{"GET", "/v1/controls", s.getControls},
		{"GET", "/v1/dead-letters", s.listDead},
		{"GET", "/v1/dead-letters/{id}", s.getDead},
		{"POST", "/v1/dead-letters/{id}/redrive", s.redrive},
		{"POST", "/v1/tickets", s.postTicket},
	}
}

// New returns a Server. It returns an error listing every problem of cfg.
func New(cfg *Config) (*Server, error) {
	if cfg == nil || cfg.Client == nil {
		return nil, errors.New("httpapi: Config.Client is required")
	}
	s := &Server{
		client: cfg.Client, broker: cfg.Client.Broker(), kinds: cfg.Kinds, disabled: cfg.Disabled,
		queues: cfg.Queues, token: []byte(cfg.Token), maxBody: cfg.MaxBody, maxItems: cfg.MaxItems,
		maxItem: cfg.MaxItem, maxWait: cfg.MaxWait, ttl: cfg.ResultTTL, metrics: cfg.Metrics, ui: cfg.UI,
		controls: cfg.Controls,
		ready:    cfg.Ready, log: cfg.Logger, drainCh: make(chan struct{}), trackers: map[string]*tracker{},
	}
	var errs []error
	neg := func(name string, v int64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("httpapi: Config.%s is %d: want 0 (the default) or more", name, v))
		}
	}
	neg("MaxBody", s.maxBody)
	neg("MaxItems", int64(s.maxItems))
	neg("MaxItem", int64(s.maxItem))
	neg("MaxWait", int64(s.maxWait))
	neg("ResultTTL", int64(s.ttl))
	neg("BodyTimeout", int64(cfg.BodyTimeout))
	neg("StreamWriteTimeout", int64(cfg.StreamWriteTimeout))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if s.maxBody == 0 {
		s.maxBody = DefaultMaxBody
	}
	if s.bodyTime = cfg.BodyTimeout; s.bodyTime == 0 {
		s.bodyTime = DefaultBodyTimeout
	}
	if s.streamWrite = cfg.StreamWriteTimeout; s.streamWrite == 0 {
		s.streamWrite = DefaultStreamWriteTimeout
	}
	if s.maxItems == 0 {
		s.maxItems = DefaultMaxItems
	}
	if s.maxItem == 0 {
		s.maxItem = DefaultMaxItem
	}
	if s.maxWait == 0 {
		s.maxWait = DefaultMaxWait
	}
	if s.ttl == 0 {
		s.ttl = DefaultResultTTL
	}
	if len(s.queues) == 0 {
		s.queues = []string{queue.DefaultQueue}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, h := range cfg.Hosts {
		if h == "*" {
			s.anyHost = true
		}
		s.hosts = append(s.hosts, normHost(h))
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.sweeper()
	s.csrf = http.NewCrossOriginProtection()
	s.csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, problem(http.StatusForbidden, CodeForbidden,
			"cross-origin %s refused: send it from the same origin or without a browser", r.Method))
	}))
	s.mux = http.NewServeMux()
	for _, rt := range s.routes() {
		h := rt.h
		s.mux.HandleFunc(rt.method+" "+rt.pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r); err != nil {
				s.fail(w, r, err)
			}
		})
	}
	s.guarded = s.csrf.Handler(s.mux)
	if s.ui != nil {
		s.guardedUI = s.csrf.Handler(s.ui)
	}
	return s, nil
}

// forUI reports whether a path that no route serves goes to Config.UI:
// any outside /v1/ and the health and metrics routes.
func (s *Server) forUI(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/metrics":
		return false
	}
	return !strings.HasPrefix(path, "/v1/")
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if op := (*net.OpError)(nil); errors.As(err, &op) && op.Op == "write" {
		// Writing the response failed: the client went away (or stopped
		// reading) after its header was sent, and no problem can follow.
		s.log.DebugContext(r.Context(), "client gone", "method", r.Method, "path", r.URL.Path, "err", err)
		return
	}
	var pe *problemError
	if !errors.As(err, &pe) || pe.p.Status >= 500 && pe.p.Status != http.StatusServiceUnavailable && pe.p.Status != http.StatusNotImplemented {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeProblem(w, err)
}

// ServeHTTP implements http.Handler: the host, token, origin checks, then
// the route. With the logger at debug level, it logs every request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			s.log.DebugContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
				"took", time.Since(start), "remote", r.RemoteAddr)
		}()
		w = sw
	}
	s.serve(w, r)
}

// statusWriter keeps the status of a response, for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (event
// streams flush through it).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if !s.hostAllowed(r.Host) {
		writeProblem(w, problem(http.StatusForbidden, CodeForbidden,
			"host %q is not served here: use localhost, 127.0.0.1 or [::1], or start the server with the host allowed (and a token)", r.Host))
		return
	}
	open := r.URL.Path == "/healthz" || r.URL.Path == "/readyz"
	h, pattern := s.mux.Handler(r)
	authed := len(s.token) == 0 || s.authorized(r) || s.ticketOK(r, pattern, time.Now())
	if pattern == "" && s.guardedUI != nil && s.forUI(r.URL.Path) {
		s.guardedUI.ServeHTTP(w, withAuth(r, authed))
		return
	}
	if !open && !authed {
		writeProblem(w, problem(http.StatusUnauthorized, CodeUnauthorized,
			"missing or wrong token: send the header \"Authorization: Bearer <token>\" (an event stream also takes ?ticket= from POST /v1/tickets)"))
		return
	}
	if pattern == "" {
		// Not found, method not allowed, or a redirect to the cleaned
		// path: keep the status and headers, answer with a problem.
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusNotFound:
			writeProblem(w, problem(http.StatusNotFound, CodeNotFound, "no route %s %s: see /v1/openapi.json", r.Method, r.URL.Path))
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeProblem(w, problem(http.StatusMethodNotAllowed, CodeMethod, "%s not allowed on %s: allowed %s", r.Method, r.URL.Path, rec.header.Get("Allow")))
		default:
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.status)
		}
		return
	}
	s.guarded.ServeHTTP(w, r) // the mux again: Handler does not set path values
}

// statusRecorder keeps the status and headers the mux's own handlers
// write, and drops their plain-text bodies.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *statusRecorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return len(b), nil
}

func (s *Server) authorized(r *http.Request) bool {
	// The scheme is case-insensitive (RFC 9110, 11.1); the token is not.
	a := r.Header.Get("Authorization")
	const scheme = "Bearer "
	if len(a) < len(scheme) || !strings.EqualFold(a[:len(scheme)], scheme) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(a[len(scheme):]), s.token) == 1
}

func (s *Server) hostAllowed(hostport string) bool {
	if s.anyHost || len(s.token) > 0 {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	switch host = normHost(host); host {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return slices.Contains(s.hosts, host)
}

// normHost returns a host name as the Host check compares it: lower case,
// without the brackets of an IPv6 address or the trailing dot of a fully
// qualified name.
func normHost(h string) string {
	return strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
}

// Drain makes the server refuse new work with 503 (code "draining") and
// /readyz fail, and ends waiting requests and event streams with what they
// have: the first step of a graceful shutdown, before http.Server.Shutdown.
func (s *Server) Drain() {
	s.drainMu.Do(func() {
		s.draining.Store(true)
		close(s.drainCh)
		s.mu.Lock()
		svcs := s.services
		s.mu.Unlock()
		for _, svc := range svcs {
			svc.Drain()
		}
	})
}

// Close drains the server and stops following batches, returning once
// every follower goroutine has exited. Requests still running see their
// waits end.
func (s *Server) Close() error {
	s.Drain()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Server) checkDraining() error {
	if s.draining.Load() {
		return retryLater(problem(http.StatusServiceUnavailable, CodeDraining,
			"the server is shutting down: send the request to another server or retry"), 5*time.Second)
	}
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := w.Write([]byte("ok\n"))
	return err
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if err := s.checkDraining(); err != nil {
		return err
	}
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			return problem(http.StatusServiceUnavailable, CodeBrokerDown, "not ready: %v", err)
		}
	}
	return s.healthz(w, r)
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	if s.metrics == nil {
		return problem(http.StatusNotFound, CodeNotFound, "metrics are not served here")
	}
	s.metrics.ServeHTTP(w, r)
	return nil
}

//go:embed openapi.json
var openapiDoc []byte

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openapiDoc)
	return err
}
