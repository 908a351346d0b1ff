package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/queue"
)

// Defaults for Config.
const (
	DefaultFrameInterval      = 100 * time.Millisecond
	DefaultHistory            = 5 * time.Minute
	DefaultStreamWriteTimeout = 30 * time.Second
)

// Config configures a Dashboard. Every field is optional.
type Config struct {
	// Inspector is read for the queues' depth, the batches and their
	// tasks' states, and, when it is also a queue.Pauser, whether each
	// queue is paused (the page pauses and resumes queues through the
	// HTTP API). Default nil: the page shows what the observed events
	// tell and says that the broker cannot be inspected.
	Inspector queue.Inspector
	// NATS, when set, is where worker heartbeats (see Announce) are heard,
	// on the subjects under Prefix. Default nil: no worker table.
	NATS *nats.Conn
	// Prefix is the broker's subject prefix. Default "gather" (natsbroker's
	// default).
	Prefix string
	// Snapshots are the snapshot collectors shown, in order; see also Add.
	Snapshots []SnapshotSource
	// FrameInterval is the shortest time between two updates of a page:
	// the events of a frame are sent together. Default
	// DefaultFrameInterval.
	FrameInterval time.Duration
	// StreamWriteTimeout is the longest one write of a page's event
	// stream may wait for the page to read; then the stream ends (the page
	// reconnects), rather than hold one of the streams a dashboard allows
	// for as long as a page that stopped reading stays connected. Default
	// DefaultStreamWriteTimeout; at most an hour.
	StreamWriteTimeout time.Duration
	// History is how far back the charts go, at one point a second.
	// Default DefaultHistory; at most an hour.
	History time.Duration
	// Logger receives the errors of reading the broker. Default: discard.
	Logger *slog.Logger
}

// Dashboard serves the web dashboard: its pages (embedded in the binary)
// and the server-sent event stream they show live. It is a queue.Observer
// (see Observe) whose counts feed the charts. Mount it as
// httpapi.Config.UI, so that its requests pass the API's host, token and
// origin checks; its page uses the API for everything else.
//
// A Dashboard owns a goroutine that samples the counts every second and
// pushes what changed to the open pages (at most one frame a
// FrameInterval), one that reads the broker while a page is open (at most
// twice a second for the queues, with one more read per queue for whether
// it is paused when the Inspector is a queue.Pauser, and, while a page
// shows the batch list,
// four times for the batches; less when nothing happens), and one per
// snapshot source that waits for its changes. Close stops them. It is safe
// for concurrent use.
type Dashboard struct {
	cfg    Config
	in     queue.Inspector
	log    *slog.Logger
	frame  time.Duration
	npts   int
	static http.Handler

	queues   queueTable
	active   atomic.Bool // an event came since the last frame
	joinFlag atomic.Bool // a stream opened since the last frame
	// wantQueues and wantBatches ask the reads goroutine to read the
	// broker; readWake (size 1) wakes it. batchesRunning: the last list
	// had a batch running. lastQueues is only the reads goroutine's.
	wantQueues, wantBatches, batchesRunning atomic.Bool
	readWake                                chan struct{}
	lastQueues                              []byte
	wake                                    chan struct{} // size 1: a poke is a flag, not a count

	hub     hub
	workers workerTable
	sub     *nats.Subscription

	mu    sync.Mutex
	snaps []*snapState

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

//go:embed web
var webFS embed.FS

// New returns a Dashboard and starts its goroutine. It returns an error
// listing every problem of cfg.
func New(cfg *Config) (*Dashboard, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	var errs []error
	if c.FrameInterval < 0 || c.FrameInterval > 10*time.Second {
		errs = append(errs, fmt.Errorf("dashboard: Config.FrameInterval %v: want 0 (the default, %v) to 10s", c.FrameInterval, DefaultFrameInterval))
	}
	if c.StreamWriteTimeout < 0 || c.StreamWriteTimeout > time.Hour {
		errs = append(errs, fmt.Errorf("dashboard: Config.StreamWriteTimeout %v: want 0 (the default, %v) to 1h", c.StreamWriteTimeout, DefaultStreamWriteTimeout))
	}
	if c.History < 0 || c.History > time.Hour {
		errs = append(errs, fmt.Errorf("dashboard: Config.History %v: want 0 (the default, %v) to 1h", c.History, DefaultHistory))
	}
	if c.Prefix == "" {
		c.Prefix = "gather"
	} else if err := queue.CheckName("prefix", c.Prefix); err != nil {
		errs = append(errs, fmt.Errorf("dashboard: Config.Prefix: %w", err))
	}
	for i, s := range c.Snapshots {
		if s == nil {
			errs = append(errs, fmt.Errorf("dashboard: Config.Snapshots[%d] is nil", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if c.FrameInterval == 0 {
		c.FrameInterval = DefaultFrameInterval
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	if c.StreamWriteTimeout == 0 {
		c.StreamWriteTimeout = DefaultStreamWriteTimeout
	}
	d := &Dashboard{
		cfg: c, in: c.Inspector, log: c.Logger, frame: c.FrameInterval,
		npts: int(max(c.History/time.Second, 1)), wake: make(chan struct{}, 1), readWake: make(chan struct{}, 1),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	sub, _ := fs.Sub(webFS, "web")
	d.static = http.FileServerFS(sub)
	d.hub.init()
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if c.NATS != nil {
		s, err := c.NATS.Subscribe(c.Prefix+".workers.*", func(m *nats.Msg) {
			if d.workers.heard(m.Data, time.Now()) {
				d.poke()
			}
		})
		if err != nil {
			d.cancel()
			return nil, fmt.Errorf("dashboard: subscribing to worker heartbeats: %w", err)
		}
		d.sub = s
	}
	for _, s := range c.Snapshots {
		d.addSnapshot(s)
	}
	d.wg.Go(d.run)
	if d.in != nil {
		d.wg.Go(d.reads)
	}
	return d, nil
}

// Add shows one more snapshot collector, after those shown already.
func (d *Dashboard) Add(s SnapshotSource) error {
	if s == nil {
		return errors.New("dashboard: Add(nil)")
	}
	if d.ctx.Err() != nil {
		return errors.New("dashboard: Add after Close")
	}
	d.addSnapshot(s)
	return nil
}

// Close stops the dashboard's goroutines and ends its event streams,
// returning once they have exited.
func (d *Dashboard) Close() error {
	d.closed.Do(func() {
		if d.sub != nil {
			_ = d.sub.Unsubscribe()
		}
		d.cancel()
		d.hub.close()
	})
	d.wg.Wait()
	return nil
}

// ServeHTTP serves the page at / and its files, to anyone (they hold no
// secret), /dashboard/session (whether the request passed the API's token
// check, as JSON), and the event stream at /dashboard/events to requests
// that passed it (see httpapi.Authenticated; a page opens it
// with a ticket from POST /v1/tickets when the server has a token).
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	switch {
	case r.URL.Path == "/dashboard/session" && r.Method == http.MethodGet:
		// Whether the request's token is good, without a 401 that a
		// browser would log as an error: the page asks it first.
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "{\"authenticated\":%t}\n", httpapi.Authenticated(r))
	case r.URL.Path == "/dashboard/events":
		if r.Method != http.MethodGet {
			h.Set("Allow", "GET")
			http.Error(w, "only GET", http.StatusMethodNotAllowed)
			return
		}
		if !httpapi.Authenticated(r) {
			h.Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"type":"about:blank","title":"Unauthorized","status":401,"code":"unauthorized","detail":"missing or wrong token: open the stream with ?ticket= from POST /v1/tickets"}`+"\n")
			return
		}
		d.events(w, r)
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "only GET", http.StatusMethodNotAllowed)
	case r.URL.Path == "/" || r.URL.Path == "/index.html" || r.URL.Path == "/app.js" || r.URL.Path == "/app.css" || r.URL.Path == "/favicon.svg":
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Frame-Options", "DENY")
		d.static.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}
