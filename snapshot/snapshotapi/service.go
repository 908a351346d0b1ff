package snapshotapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/snapshot"
	"github.com/gather-go/gather/snapshot/natsfeed"
)

// Defaults for Config.
const (
	DefaultMaxBody     = 8 << 20
	DefaultMaxRecords  = 100_000
	DefaultMaxWait     = 60 * time.Second
	DefaultBodyTimeout = 2 * time.Minute
	// DefaultStreamWriteTimeout is Config.StreamWriteTimeout's default.
	DefaultStreamWriteTimeout = 30 * time.Second
	defaultInterval           = time.Second
	defaultHorizon            = time.Minute
)

// Config configures a [Service]. Specs is required; every other zero
// field means its default.
type Config struct {
	// Specs are the collectors to host, at least one.
	Specs []Spec
	// NATS is the connection collectors with a NATS spec subscribe on; the
	// caller keeps owning it and closes it after the Service. Required
	// only when a spec has NATS set.
	NATS *nats.Conn
	// MaxBody is the largest POST body, in bytes. Default DefaultMaxBody.
	MaxBody int64
	// MaxRecords is the most records of one POST. Default
	// DefaultMaxRecords.
	MaxRecords int
	// MaxWait clamps the wait a read asks for. Default DefaultMaxWait.
	MaxWait time.Duration
	// BodyTimeout is the longest a POST may take to send its body; then
	// it gets 400. Default DefaultBodyTimeout. (The http.Server has no
	// ReadTimeout, which would also cut long waits and event streams.)
	BodyTimeout time.Duration
	// StreamWriteTimeout is the longest one write of an event stream may
	// wait for a client that does not read; then the stream ends. Default
	// DefaultStreamWriteTimeout.
	StreamWriteTimeout time.Duration
	// Logger receives what the NATS feeds cannot return. Default: discard.
	Logger *slog.Logger
}

// Service hosts named snapshot collectors over HTTP: mount it on an
// [httpapi.Server] with Mount, which serves its routes behind the server's
// token, host and origin checks. It is safe for concurrent use. It owns the
// NATS feeds of its collectors (one goroutine each); Close stops them. A
// request costs its handler's goroutine; an event stream holds one for as
// long as it is open, ended by Drain. Every cut answered is encoded whole:
// O(keys of every source) per read and per event, which suits collectors of
// up to some thousands of keys; a program that needs a few keys of a larger
// one reads the collector in-process (Collector).
type Service struct {
	colls       map[string]*coll
	maxBody     int64
	maxRecords  int
	maxWait     time.Duration
	bodyTime    time.Duration
	streamWrite time.Duration

	drainCtx context.Context // ends with Drain: waits and streams end
	drain    context.CancelFunc
	draining atomic.Bool
}

// coll is one hosted collector.
type coll struct {
	spec            Spec
	c               *snapshot.Collector[string, json.RawMessage]
	feed            *natsfeed.Feed[json.RawMessage] // nil: fed by POST
	interval, grace time.Duration
}

// New creates the collectors of cfg.Specs and starts the NATS feeds of
// those that have one. The error joins every problem of cfg.
func New(cfg *Config) (*Service, error) {
	if cfg == nil {
		return nil, errors.New("snapshotapi: Config.Specs is required")
	}
	if err := checkSpecs(cfg.Specs); err != nil {
		return nil, err
	}
	var errs []error
	if cfg.MaxBody < 0 || cfg.MaxRecords < 0 || cfg.MaxWait < 0 || cfg.BodyTimeout < 0 || cfg.StreamWriteTimeout < 0 {
		errs = append(errs, errors.New("snapshotapi: MaxBody, MaxRecords, MaxWait, BodyTimeout and StreamWriteTimeout: want 0 (the default) or more"))
	}
	for _, sp := range cfg.Specs {
		if sp.NATS != nil && cfg.NATS == nil {
			errs = append(errs, fmt.Errorf("snapshotapi: collector %q is fed from NATS but Config.NATS is nil", sp.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Service{
		colls: map[string]*coll{}, maxBody: cmp(cfg.MaxBody, DefaultMaxBody),
		maxRecords: cmp(cfg.MaxRecords, DefaultMaxRecords), maxWait: cmp(cfg.MaxWait, DefaultMaxWait),
		bodyTime: cmp(cfg.BodyTimeout, DefaultBodyTimeout), streamWrite: cmp(cfg.StreamWriteTimeout, DefaultStreamWriteTimeout),
	}
	s.drainCtx, s.drain = context.WithCancel(context.Background())
	for _, sp := range cfg.Specs {
		c, err := s.start(sp, cfg)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.colls[sp.Name] = c
	}
	return s, nil
}

func cmp[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

func (s *Service) start(sp Spec, cfg *Config) (*coll, error) {
	iv := cmp(time.Duration(sp.Interval), defaultInterval)
	sc := &snapshot.Config[string, json.RawMessage]{
		Interval: iv, Horizon: cmp(time.Duration(sp.Horizon), defaultHorizon),
		SilentAfter: time.Duration(sp.SilentAfter),
	}
	for _, src := range sp.Sources {
		sc.Sources = append(sc.Sources, snapshot.Source{Name: src.Name, Optional: src.Optional})
	}
	c := &coll{spec: sp, interval: iv, grace: cmp(time.Duration(sp.Grace), iv)}
	if sp.NATS != nil {
		f, err := natsfeed.Start(cfg.NATS, &natsfeed.Config[json.RawMessage]{
			Prefix: sp.NATS.Prefix, Snapshot: sc, NoImage: sp.NATS.NoImage, Logger: cfg.Logger,
			Decode: func(b []byte) (json.RawMessage, error) {
				if !json.Valid(b) {
					return nil, errors.New("the body is not JSON")
				}
				return json.RawMessage(append([]byte(nil), b...)), nil
			},
		})
		if err != nil {
			return nil, fmt.Errorf("snapshotapi: collector %q: %w", sp.Name, err)
		}
		c.feed, c.c = f, f.Collector()
		return c, nil
	}
	col, err := snapshot.New(sc)
	if err != nil {
		return nil, fmt.Errorf("snapshotapi: collector %q: %w", sp.Name, err)
	}
	c.c = col
	return c, nil
}

// Collector returns the named collector, for a program that also feeds or
// reads it in-process.
func (s *Service) Collector(name string) (*snapshot.Collector[string, json.RawMessage], bool) {
	c, ok := s.colls[name]
	if !ok {
		return nil, false
	}
	return c.c, true
}

// Routes returns the service's routes, for [httpapi.Server.Mount].
func (s *Service) Routes() []httpapi.Route {
	return []httpapi.Route{
		{Method: "GET", Pattern: "/v1/snapshots", Handler: s.list},
		{Method: "POST", Pattern: "/v1/snapshots/{name}/updates", Handler: s.post},
		{Method: "GET", Pattern: "/v1/snapshots/{name}/latest", Handler: s.latest},
		{Method: "GET", Pattern: "/v1/snapshots/{name}", Handler: s.at},
		{Method: "GET", Pattern: "/v1/snapshots/{name}/events", Handler: s.events},
	}
}

// Drain makes the service refuse updates with 503 and ends its waits and
// event streams with what they have. It does not block.
func (s *Service) Drain() {
	s.draining.Store(true)
	s.drain()
}

// Close drains the service and stops its NATS feeds, waiting for their
// goroutines. The collectors stay readable.
func (s *Service) Close() error {
	s.Drain()
	for _, c := range s.colls {
		if c.feed != nil {
			c.feed.Close()
		}
	}
	return nil
}

func (s *Service) coll(r *http.Request) (*coll, error) {
	name := r.PathValue("name")
	c, ok := s.colls[name]
	if !ok {
		return nil, httpapi.Error(http.StatusNotFound, httpapi.CodeNotFound, "no snapshot collector %q: GET /v1/snapshots lists them", name)
	}
	return c, nil
}

// list answers GET /v1/snapshots: every collector's spec.
func (s *Service) list(w http.ResponseWriter, r *http.Request) error {
	out := make([]Spec, 0, len(s.colls))
	for _, c := range s.colls {
		out = append(out, c.spec)
	}
	slicesSortByName(out)
	return writeJSON(w, http.StatusOK, map[string]any{"snapshots": out})
}

// post answers POST /v1/snapshots/{name}/updates: records applied in
// order. A refused record stops the request; those before it were applied.
func (s *Service) post(w http.ResponseWriter, r *http.Request) error {
	c, err := s.coll(r)
	if err != nil {
		return err
	}
	if s.draining.Load() {
		return httpapi.Error(http.StatusServiceUnavailable, httpapi.CodeDraining, "the server is shutting down: send the updates to another server or retry")
	}
	if c.feed != nil {
		return httpapi.Error(http.StatusConflict, httpapi.CodeConflict, "collector %q is fed from NATS subjects (prefix %q), not by POST", c.spec.Name, c.spec.NATS.Prefix)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil ||
		(mt != "application/json" && mt != "application/x-ndjson" && mt != "application/jsonl") {
		return httpapi.Error(http.StatusUnsupportedMediaType, httpapi.CodeMediaType, "Content-Type %q: want application/json (an array or JSON lines) or application/x-ndjson", r.Header.Get("Content-Type"))
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.bodyTime)) // unsupported only on test recorders
	recs, err := decodeRecords(http.MaxBytesReader(w, r.Body, s.maxBody), s.maxRecords)
	if err == nil {
		// The body was read to its end. Cleared only then: the server
		// reads what a refused body has left before it answers, and that
		// read needs the deadline too.
		_ = rc.SetReadDeadline(time.Time{})
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return httpapi.Error(http.StatusBadRequest, httpapi.CodeMalformed, "the body did not arrive within %v: send it faster or split the records over several requests", s.bodyTime)
	case errors.As(err, &mbe):
		return httpapi.Error(http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge, "request body over %d bytes: the limit is %d bytes; split the records over several requests", mbe.Limit, mbe.Limit)
	case errors.Is(err, errTooMany):
		return httpapi.Error(http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge, "%v", err)
	case err != nil:
		return httpapi.Error(http.StatusBadRequest, httpapi.CodeMalformed, "%v", err)
	}
	for i := range recs {
		if err := apply(c.c, &recs[i]); err != nil {
			return httpapi.Error(http.StatusUnprocessableEntity, httpapi.CodeBadInput, "record %d refused (the %d before it were applied): %v", i, i, err)
		}
	}
	return writeJSON(w, http.StatusOK, map[string]int{"applied": len(recs)})
}

func apply(c *snapshot.Collector[string, json.RawMessage], rec *record) error {
	switch rec.Type {
	case "heartbeat":
		return c.Heartbeat(snapshot.Heartbeat{Source: rec.Source, Seq: rec.Seq, Time: rec.Time.Time, Epoch: rec.Epoch})
	case "image":
		img := snapshot.Image[string, json.RawMessage]{Source: rec.Source, Seq: rec.Seq, Time: rec.Time.Time, Untimed: rec.Untimed}
		for _, e := range rec.Entries {
			img.Entries = append(img.Entries, snapshot.Entry[string, json.RawMessage]{Key: e.Key, Value: e.Value})
		}
		return c.Reset(img)
	}
	return c.Apply(snapshot.Update[string, json.RawMessage]{
		Source: rec.Source, Seq: rec.Seq, Time: rec.Time.Time, Key: rec.Key, Value: rec.Value,
		Delete: rec.Delete, EndOfEvent: rec.EndOfEvent,
	})
}

// latest answers GET /v1/snapshots/{name}/latest: the newest complete cut.
func (s *Service) latest(w http.ResponseWriter, r *http.Request) error {
	c, err := s.coll(r)
	if err != nil {
		return err
	}
	cut := c.c.Latest()
	if cut == nil {
		return httpapi.Error(http.StatusNotFound, httpapi.CodeNotFound, "collector %q has no complete cut yet: GET /v1/snapshots/%s?at=T&wait=2s says which sources hold one back", c.spec.Name, c.spec.Name)
	}
	return writeJSON(w, http.StatusOK, encodeCut(c.spec.Name, cut))
}

// at answers GET /v1/snapshots/{name}?at=T&wait=2s: the cut at T once
// complete (200), or as it stands when the wait ends (202).
func (s *Service) at(w http.ResponseWriter, r *http.Request) error {
	c, err := s.coll(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	av := q.Get("at")
	if av == "" {
		return httpapi.Error(http.StatusBadRequest, httpapi.CodeMalformed, "at is missing: give the cut's event time, RFC 3339 (\"2026-01-02T09:30:00Z\") or Unix nanoseconds; /latest gives the newest complete cut")
	}
	var et eventTime
	if err := et.UnmarshalJSON(quoteIfNeeded(av)); err != nil {
		return httpapi.Error(http.StatusBadRequest, httpapi.CodeMalformed, "at: %v", err)
	}
	wait, err := s.waitParam(q.Get("wait"))
	if err != nil {
		return err
	}
	// A cut is taken when the wait ends: one ahead of the clock would
	// make every update before it late.
	if limit := time.Now().Add(wait + time.Second); et.Time.After(limit) {
		return httpapi.Error(http.StatusUnprocessableEntity, httpapi.CodeBadOption, "at %s is later than the server's clock plus the wait (%s): ask for a time no later than the wait's end", et.Time.Format(time.RFC3339Nano), limit.Format(time.RFC3339Nano))
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	stop := context.AfterFunc(s.drainCtx, cancel)
	defer stop()
	cut, err := c.c.At(ctx, et.Time)
	if cut == nil {
		if errors.Is(err, snapshot.ErrTooOld) {
			return httpapi.Error(http.StatusNotFound, httpapi.CodeNotFound, "%v", err)
		}
		return httpapi.Error(http.StatusBadRequest, httpapi.CodeMalformed, "at: %v", err)
	}
	status := http.StatusOK
	if !cut.Complete() {
		status = http.StatusAccepted
	}
	return writeJSON(w, status, encodeCut(c.spec.Name, cut))
}

func quoteIfNeeded(v string) []byte {
	if _, err := strconv.ParseInt(v, 10, 64); err == nil {
		return []byte(v)
	}
	b, _ := json.Marshal(v)
	return b
}

// waitParam reads wait: seconds ("2") or a duration ("2s"), clamped to
// MaxWait.
func (s *Service) waitParam(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 32)
		if nerr != nil {
			return 0, httpapi.Error(http.StatusBadRequest, httpapi.CodeMalformed, "wait %q: want seconds (\"2\") or a duration (\"2s\", \"500ms\")", v)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, httpapi.Error(http.StatusBadRequest, httpapi.CodeMalformed, "wait %q: want 0 or more", v)
	}
	return min(d, s.maxWait), nil
}

// events answers GET /v1/snapshots/{name}/events: a server-sent "cut"
// event at every multiple of the collector's interval, complete or, once
// grace past its time, incomplete with its reasons. A slow reader skips to
// the newest cut ("skipped" counts the cuts it missed). The event ID is the
// cut's sequence number; a reconnecting client gets cuts from then on (a cut
// is state, not a log: the newest supersedes the ones missed). The stream
// sends nothing between cuts, so an interval longer than a proxy's idle
// timeout needs a proxy that keeps the stream open.
func (s *Service) events(w http.ResponseWriter, r *http.Request) error {
	c, err := s.coll(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.drainCtx, cancel)
	defer stop()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Each write may wait StreamWriteTimeout for the client to read; the
	// connection, kept alive after the stream, gets no deadline.
	defer rc.SetWriteDeadline(time.Time{})
	if err := rc.Flush(); err != nil {
		return nil
	}
	for cut, skipped := range c.c.Every(ctx, c.interval, c.grace) {
		ev := encodeCut(c.spec.Name, cut)
		ev.Skipped = skipped
		b, err := json.Marshal(ev)
		if err != nil {
			return nil // the headers are sent: nothing to answer with
		}
		_ = rc.SetWriteDeadline(time.Now().Add(s.streamWrite))
		if _, err := fmt.Fprintf(w, "id: %d\nevent: cut\ndata: %s\n\n", cut.Seq(), b); err != nil {
			return nil // the client went away, or does not read
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}
