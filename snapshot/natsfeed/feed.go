package natsfeed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gather-go/gather/snapshot"
)

// Feed defaults.
const (
	DefaultRequestTimeout = 2 * time.Second
	DefaultMaxHeld        = 1 << 16
)

// Config configures a [Feed]. Snapshot with at least one source is required;
// every other field's zero value is its default.
type Config[V any] struct {
	// Prefix is the subject prefix the sources publish under. Default
	// [DefaultPrefix].
	Prefix string
	// Snapshot configures the feed's collector. Its Sources are the
	// sources the feed subscribes to (each name one subject token). Its
	// GapFill, if set, is called before the feed asks for the resend.
	Snapshot *snapshot.Config[string, V]
	// Decode turns a message body into a value. Default: encoding/json.
	Decode func([]byte) (V, error)
	// NoImage starts every source from its first update instead of asking
	// its publisher for an image: for feeds that start before their
	// sources. Default false: a feed that joins late starts from images.
	NoImage bool
	// RequestTimeout is how long an image or resend request may go
	// unanswered before it is asked again (an image, with twice the time at
	// each attempt, up to 16 times this) or given up for an image (a
	// resend). Default [DefaultRequestTimeout].
	RequestTimeout time.Duration
	// MaxHeld bounds, per source, the updates held while its image is
	// awaited; beyond it the oldest are dropped (the image or a resend
	// covers them). Default [DefaultMaxHeld].
	MaxHeld int
	// Logger receives what the feed cannot return: messages the collector
	// refused, requests that failed. Default: discard.
	Logger *slog.Logger
}

// Stats are a Feed's running totals.
type Stats struct {
	Updates    uint64 // update messages applied (duplicates included)
	Heartbeats uint64 // heartbeats applied
	Refused    uint64 // messages refused: undecodable, or by the collector
	Resends    uint64 // resend requests sent
	Answered   uint64 // resend requests answered with updates
	Resent     uint64 // updates the answers said were sent again
	Images     uint64 // images installed
}

// Feed subscribes to sources' subjects and feeds their updates and
// heartbeats to a [snapshot.Collector]; it asks the sources for resends
// when the collector finds a gap, and for an image when a source cannot
// resend, when it overflows, and (unless NoImage) when the feed starts.
//
// Create one with [Start]; Close stops it. Its methods are safe for
// concurrent use. It owns one goroutine (image requests and request
// timeouts), which Close waits for; messages are applied on the NATS
// subscriptions' goroutines, one per source, so sources are applied in
// parallel.
type Feed[V any] struct {
	nc      *nats.Conn
	c       *snapshot.Collector[string, V]
	prefix  string
	dec     func([]byte) (V, error)
	timeout time.Duration
	maxHeld int
	log     *slog.Logger
	inbox   string
	srcs    map[string]*feedSource
	list    []*feedSource
	userGap func(string, uint64, uint64)

	wake   chan struct{} // size 1: a pending wake-up is enough
	ready  chan struct{} // closed once every source has started
	starts atomic.Int64  // sources not started yet
	cancel context.CancelFunc
	done   chan struct{}
	subs   []*nats.Subscription
	closed atomic.Bool

	updates, heartbeats, refused, resends, answered, resent, images atomic.Uint64
}

// feedSource is one source's state in the feed.
type feedSource struct {
	name    string
	updPref string // "<prefix>.q.<source>.u."

	mu      sync.Mutex // serializes applying, holding and installing images
	imaging bool       // an image is awaited: hold updates and the latest heartbeat
	held    []*nats.Msg
	heldHB  *nats.Msg

	started     bool         // its first image was settled; guarded by mu
	wantImage   atomic.Bool  // the loop should ask for an image
	attempts    int          // image requests unanswered in a row; the loop's own
	resendSince atomic.Int64 // Unix ns of the oldest unanswered resend request; 0 if none
}

// Start creates the collector cfg.Snapshot describes, subscribes to its
// sources on nc and, unless cfg.NoImage, asks each source for an image.
// The caller keeps owning nc; Close the feed before closing it.
func Start[V any](nc *nats.Conn, cfg *Config[V]) (*Feed[V], error) {
	if nc == nil {
		return nil, errors.New("natsfeed: Start with a nil connection")
	}
	if cfg == nil || cfg.Snapshot == nil || len(cfg.Snapshot.Sources) == 0 {
		return nil, errors.New("natsfeed: Start needs Config.Snapshot with the Sources to subscribe to")
	}
	f := &Feed[V]{
		nc: nc, prefix: cfg.Prefix, dec: cfg.Decode, timeout: cfg.RequestTimeout, maxHeld: cfg.MaxHeld,
		log: cfg.Logger, srcs: map[string]*feedSource{}, userGap: cfg.Snapshot.GapFill,
		wake: make(chan struct{}, 1), done: make(chan struct{}), ready: make(chan struct{}),
	}
	if f.prefix == "" {
		f.prefix = DefaultPrefix
	}
	var errs []error
	if err := checkDotted("prefix", f.prefix); err != nil {
		errs = append(errs, err)
	}
	for _, s := range cfg.Snapshot.Sources {
		if err := checkToken("source name", s.Name); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case f.timeout < 0:
		errs = append(errs, fmt.Errorf("natsfeed: RequestTimeout is %v: want 0 (default %v) or more", f.timeout, DefaultRequestTimeout))
	case f.timeout == 0:
		f.timeout = DefaultRequestTimeout
	}
	switch {
	case f.maxHeld < 0:
		errs = append(errs, fmt.Errorf("natsfeed: MaxHeld is %d: want 0 (default %d) or more", f.maxHeld, DefaultMaxHeld))
	case f.maxHeld == 0:
		f.maxHeld = DefaultMaxHeld
	}
	scfg := *cfg.Snapshot
	scfg.GapFill = f.gapFill
	c, err := snapshot.New(&scfg)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	f.c = c
	if f.dec == nil {
		f.dec = func(b []byte) (V, error) {
			var v V
			err := json.Unmarshal(b, &v)
			return v, err
		}
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	for _, s := range cfg.Snapshot.Sources {
		fs := &feedSource{name: s.Name, updPref: UpdateSubject(f.prefix, s.Name, "")}
		if cfg.NoImage {
			fs.started = true
		} else {
			fs.imaging = true
			fs.wantImage.Store(true)
			f.starts.Add(1)
		}
		f.srcs[s.Name] = fs
		f.list = append(f.list, fs)
	}
	f.inbox = nc.NewInbox()
	if err := f.subscribe(f.inbox+".>", f.onReply); err != nil {
		return nil, err
	}
	for _, fs := range f.list {
		hb := HeartbeatSubject(f.prefix, fs.name)
		if err := f.subscribe(sourceSubject(f.prefix, fs.name), func(m *nats.Msg) {
			if m.Subject == hb {
				f.onHeartbeat(fs, m)
			} else {
				f.onUpdate(fs, m)
			}
		}); err != nil {
			return nil, err
		}
	}
	if err := nc.Flush(); err != nil {
		f.unsubscribe()
		return nil, fmt.Errorf("natsfeed: flush: %w", err)
	}
	if f.starts.Load() == 0 {
		close(f.ready)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go f.loop(ctx)
	f.poke()
	return f, nil
}

func (f *Feed[V]) subscribe(subj string, cb nats.MsgHandler) error {
	sub, err := f.nc.Subscribe(subj, cb)
	if err != nil {
		f.unsubscribe()
		return fmt.Errorf("natsfeed: subscribe %s: %w", subj, err)
	}
	// Quotes come in bursts; let a burst wait rather than be dropped as a
	// slow consumer (a drop would be a gap to fill).
	_ = sub.SetPendingLimits(1<<20, 256<<20)
	f.subs = append(f.subs, sub)
	return nil
}

func (f *Feed[V]) unsubscribe() {
	for _, s := range f.subs {
		_ = s.Unsubscribe()
	}
}

// Collector returns the feed's collector, to take cuts from.
func (f *Feed[V]) Collector() *snapshot.Collector[string, V] { return f.c }

// Ready returns a channel closed once every source has started: its image
// installed, or its publisher found to have sent nothing yet or not to be
// there (the source then starts from its first update). With NoImage it is
// closed from the start. While a publisher that is there does not answer,
// the feed keeps asking and the channel stays open: bound the wait.
func (f *Feed[V]) Ready() <-chan struct{} { return f.ready }

// Stats returns the feed's running totals.
func (f *Feed[V]) Stats() Stats {
	return Stats{
		Updates: f.updates.Load(), Heartbeats: f.heartbeats.Load(), Refused: f.refused.Load(),
		Resends: f.resends.Load(), Answered: f.answered.Load(), Resent: f.resent.Load(), Images: f.images.Load(),
	}
}

// Close unsubscribes and stops the feed's goroutine, waiting for it. A
// message callback already running may still finish after Close returns;
// the collector stays usable.
func (f *Feed[V]) Close() error {
	if f.closed.Swap(true) {
		return nil
	}
	f.unsubscribe()
	f.cancel()
	<-f.done
	return nil
}

func (f *Feed[V]) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *Feed[V]) onUpdate(s *feedSource, m *nats.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.imaging {
		if len(s.held) >= f.maxHeld {
			s.held = append(s.held[:0], s.held[len(s.held)/2:]...)
		}
		s.held = append(s.held, m)
		return
	}
	f.apply(s, m)
}

// apply applies one update message; s.mu is held.
func (f *Feed[V]) apply(s *feedSource, m *nats.Msg) {
	u, err := f.decodeUpdate(s, m)
	if err == nil {
		err = f.c.Apply(u)
	}
	if err != nil {
		f.refused.Add(1)
		f.log.Warn("natsfeed: update refused", "source", s.name, "subject", m.Subject, "err", err)
		if errors.Is(err, snapshot.ErrOverflow) {
			f.askImage(s)
		}
		return
	}
	f.updates.Add(1)
}

func (f *Feed[V]) decodeUpdate(s *feedSource, m *nats.Msg) (snapshot.Update[string, V], error) {
	u := snapshot.Update[string, V]{Source: s.name}
	if len(m.Subject) <= len(s.updPref) {
		return u, fmt.Errorf("natsfeed: subject %q names no key", m.Subject)
	}
	u.Key = m.Subject[len(s.updPref):]
	var err error
	if u.Seq, err = parseSeq(HeaderSeq, m.Header.Get(HeaderSeq), false); err != nil {
		return u, err
	}
	if u.Time, err = parseTime(m.Header.Get(HeaderTime)); err != nil {
		return u, err
	}
	u.Delete = m.Header.Get(HeaderDelete) == "1"
	u.EndOfEvent = m.Header.Get(HeaderEnd) == "1"
	if !u.Delete {
		if u.Value, err = f.dec(m.Data); err != nil {
			return u, fmt.Errorf("natsfeed: decode %s seq %d: %w", s.name, u.Seq, err)
		}
	}
	return u, nil
}

func (f *Feed[V]) onHeartbeat(s *feedSource, m *nats.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.imaging {
		s.heldHB = m // the latest is enough: each claims all before it
		return
	}
	f.heartbeat(s, m)
}

// heartbeat applies one heartbeat message; s.mu is held.
func (f *Feed[V]) heartbeat(s *feedSource, m *nats.Msg) {
	h := snapshot.Heartbeat{Source: s.name}
	var err error
	if h.Seq, err = parseSeq(HeaderSeq, m.Header.Get(HeaderSeq), true); err == nil {
		h.Time, err = parseTime(m.Header.Get(HeaderTime))
	}
	if err == nil {
		if e := m.Header.Get(HeaderEpoch); e != "" {
			h.Epoch, err = strconv.ParseUint(e, 10, 64)
		}
	}
	if err == nil {
		err = f.c.Heartbeat(h)
	}
	if err != nil {
		f.refused.Add(1)
		f.log.Warn("natsfeed: heartbeat refused", "source", s.name, "err", err)
		return
	}
	f.heartbeats.Add(1)
}

// gapFill is the collector's GapFill hook: ask the source for a resend,
// without blocking (the reply comes to the feed's inbox).
func (f *Feed[V]) gapFill(source string, first, last uint64) {
	if f.userGap != nil {
		f.userGap(source, first, last)
	}
	s := f.srcs[source]
	if s == nil || f.closed.Load() {
		return
	}
	m := &nats.Msg{
		Subject: ResendSubject(f.prefix, source),
		Reply:   f.inbox + "." + source,
		Header:  nats.Header{HeaderFirst: {fmtUint(first)}, HeaderLast: {fmtUint(last)}},
	}
	s.resendSince.CompareAndSwap(0, time.Now().UnixNano())
	f.resends.Add(1)
	if err := f.nc.PublishMsg(m); err != nil {
		f.log.Warn("natsfeed: resend request not sent", "source", source, "first", first, "last", last, "err", err)
		f.askImage(s)
	}
}

// onReply handles a resend reply: a refusal (or no publisher at all) makes
// the feed ask for an image instead.
func (f *Feed[V]) onReply(m *nats.Msg) {
	s := f.srcs[m.Subject[len(f.inbox)+1:]]
	if s == nil {
		return
	}
	s.resendSince.Store(0)
	if e := m.Header.Get(HeaderError); e != "" || m.Header.Get("Status") == "503" {
		if e == "" {
			e = "no publisher answers"
		}
		f.log.Warn("natsfeed: resend refused; asking for an image", "source", s.name, "reason", e)
		f.askImage(s)
		return
	}
	f.answered.Add(1)
	if n, err := strconv.ParseUint(m.Header.Get(HeaderCount), 10, 64); err == nil {
		f.resent.Add(n)
	}
}

func (f *Feed[V]) askImage(s *feedSource) {
	s.wantImage.Store(true)
	f.poke()
}

// loop asks for images and watches resend requests for timeouts.
func (f *Feed[V]) loop(ctx context.Context) {
	defer close(f.done)
	tick := time.NewTicker(f.timeout / 2)
	defer tick.Stop()
	retry := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		case <-tick.C:
			now := time.Now().UnixNano()
			for _, s := range f.list {
				if t := s.resendSince.Load(); t != 0 && now-t > int64(f.timeout) {
					s.resendSince.Store(0)
					f.log.Warn("natsfeed: resend request unanswered; asking for an image", "source", s.name)
					s.wantImage.Store(true)
				}
			}
			if !retry {
				continue
			}
		}
		retry = false
		for _, s := range f.list {
			if ctx.Err() != nil {
				return
			}
			if s.wantImage.Swap(false) && !f.image(ctx, s) {
				s.wantImage.Store(true)
				retry = true
			}
		}
	}
}

// image asks s's publisher for an image and installs it, then applies the
// updates held meanwhile. It reports false if it should be asked again.
func (f *Feed[V]) image(ctx context.Context, s *feedSource) bool {
	s.mu.Lock()
	s.imaging = true
	s.mu.Unlock()
	// A reply that waits behind a backlog of updates is not lost: give each
	// attempt twice the time of the last, up to 16 times RequestTimeout.
	rctx, cancel := context.WithTimeout(ctx, f.timeout<<min(s.attempts, 4))
	defer cancel()
	reply, err := f.nc.RequestMsgWithContext(rctx, &nats.Msg{Subject: ImageSubject(f.prefix, s.name)})
	s.mu.Lock()
	defer s.mu.Unlock()
	var after uint64
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		// No publisher yet: the source starts from its first update.
		f.log.Info("natsfeed: no publisher answers image requests; starting from the first update", "source", s.name)
	case err != nil:
		s.attempts++
		if ctx.Err() == nil {
			f.log.Warn("natsfeed: image request failed; asking again", "source", s.name, "err", err)
		}
		return false
	default:
		if after, err = f.install(s, reply); err != nil {
			f.refused.Add(1)
			f.log.Warn("natsfeed: image refused; asking again", "source", s.name, "err", err)
			return false
		}
	}
	s.imaging = false
	s.attempts = 0
	if !s.started {
		s.started = true
		if f.starts.Add(-1) == 0 {
			close(f.ready)
		}
	}
	held := s.held
	s.held = nil
	for _, m := range held {
		if seq, err := strconv.ParseUint(m.Header.Get(HeaderSeq), 10, 64); err == nil && seq <= after {
			continue // in the image
		}
		f.apply(s, m)
	}
	if hb := s.heldHB; hb != nil {
		s.heldHB = nil
		// One from before the image says nothing the image did not.
		if seq, err := strconv.ParseUint(hb.Header.Get(HeaderSeq), 10, 64); err != nil || seq >= after {
			f.heartbeat(s, hb)
		}
	}
	return true
}

// install resets the source to the image in reply; it returns the image's
// sequence number (0: the source has sent nothing yet, no image). s.mu is held.
func (f *Feed[V]) install(s *feedSource, reply *nats.Msg) (uint64, error) {
	if e := reply.Header.Get(HeaderError); e != "" {
		return 0, errors.New(e)
	}
	seq, err := parseSeq(HeaderSeq, reply.Header.Get(HeaderSeq), true)
	if err != nil || seq == 0 {
		return 0, err
	}
	t, err := parseTime(reply.Header.Get(HeaderTime))
	if err != nil {
		return 0, err
	}
	raw, err := decodeImage(reply.Data)
	if err != nil {
		return 0, err
	}
	img := snapshot.Image[string, V]{Source: s.name, Seq: seq, Time: t, Entries: make([]snapshot.Entry[string, V], len(raw))}
	for i, e := range raw {
		img.Entries[i].Key = e.key
		if img.Entries[i].Value, err = f.dec(e.val); err != nil {
			return 0, fmt.Errorf("natsfeed: image of %s: key %q: %w", s.name, e.key, err)
		}
	}
	if err := f.c.Reset(img); err != nil {
		return 0, err
	}
	f.images.Add(1)
	return seq, nil
}
