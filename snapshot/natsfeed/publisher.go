package natsfeed

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultHistory is how many updates a Publisher keeps for resends by default.
const DefaultHistory = 1 << 16

// PublisherConfig configures a [Publisher]. Source is required; every other
// field's zero value is its default.
type PublisherConfig[V any] struct {
	// Prefix is the subject prefix, shared with the feeds that read this
	// source. Default [DefaultPrefix].
	Prefix string
	// Source names the source: one subject token.
	Source string
	// Encode turns a value into a message body. Default: encoding/json.
	Encode func(V) ([]byte, error)
	// History is how many of the latest updates are kept to answer resend
	// requests; a request for older ones is refused, and the feed then asks
	// for an image. Default [DefaultHistory].
	History int
	// OnResend, if set, is handed every valid resend request instead of it
	// being answered at once: it must call [ResendRequest.Answer] exactly
	// once, from any goroutine, or drop it (the feed then asks for an image
	// after its request timeout). A simulator uses it to answer late. It is
	// called on the NATS subscription's goroutine and must not block.
	OnResend func(*ResendRequest)
}

// Message is one update a [Publisher] has recorded: its sequence number is
// taken and it is kept for resends and images, whether or not it has been
// sent yet.
type Message struct {
	Key  string
	Seq  uint64
	Time time.Time
	// Data is the encoded value; nil for a delete. The Publisher keeps it
	// for resends and images: do not modify it.
	Data   []byte
	Delete bool
}

// Publisher is the sending side of one source: it numbers updates, publishes
// them and heartbeats, keeps the latest History updates to answer resend
// requests, and keeps the source's current state to answer image requests
// from feeds that join late.
//
// Create one with [NewPublisher]; Close stops it answering. Its methods are
// safe for concurrent use. It starts no goroutine: requests are answered on
// the NATS subscriptions' goroutines. It costs one encoded value per key
// and per kept update in memory.
type Publisher[V any] struct {
	nc     *nats.Conn
	prefix string
	source string
	enc    func(V) ([]byte, error)
	onRe   func(*ResendRequest)

	mu     sync.Mutex
	seq    uint64
	lastT  time.Time // latest event time recorded or announced
	hbT    time.Time // latest heartbeat time
	hist   []Message // ring by seq
	state  map[string][]byte
	subs   []*nats.Subscription
	closed bool
}

// NewPublisher returns a Publisher for cfg.Source on nc, answering resend
// and image requests from now on. The caller keeps owning nc.
func NewPublisher[V any](nc *nats.Conn, cfg *PublisherConfig[V]) (*Publisher[V], error) {
	if nc == nil {
		return nil, errors.New("natsfeed: NewPublisher with a nil connection")
	}
	if cfg == nil {
		return nil, errors.New("natsfeed: NewPublisher needs a config with a Source")
	}
	p := &Publisher[V]{nc: nc, prefix: cfg.Prefix, source: cfg.Source, enc: cfg.Encode, onRe: cfg.OnResend, state: map[string][]byte{}}
	if p.prefix == "" {
		p.prefix = DefaultPrefix
	}
	var errs []error
	if err := checkDotted("prefix", p.prefix); err != nil {
		errs = append(errs, err)
	}
	if err := checkToken("source name", p.source); err != nil {
		errs = append(errs, err)
	}
	n := cfg.History
	switch {
	case n < 0:
		errs = append(errs, fmt.Errorf("natsfeed: History is %d: want 0 (default %d) or more", n, DefaultHistory))
	case n == 0:
		n = DefaultHistory
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if p.enc == nil {
		p.enc = func(v V) ([]byte, error) { return json.Marshal(v) }
	}
	p.hist = make([]Message, n)
	for _, s := range []struct {
		subj string
		cb   nats.MsgHandler
	}{{ResendSubject(p.prefix, p.source), p.onResend}, {ImageSubject(p.prefix, p.source), p.onImage}} {
		sub, err := nc.Subscribe(s.subj, s.cb)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("natsfeed: subscribe %s: %w", s.subj, err)
		}
		p.subs = append(p.subs, sub)
	}
	// Make sure the server has the subscriptions before anyone asks.
	if err := nc.Flush(); err != nil {
		p.Close()
		return nil, fmt.Errorf("natsfeed: flush: %w", err)
	}
	return p, nil
}

// Source returns the source's name.
func (p *Publisher[V]) Source() string { return p.source }

// Seq returns the last sequence number recorded (0 before the first).
func (p *Publisher[V]) Seq() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seq
}

// Record numbers an update of key to v at event time t and keeps it (for
// resends and images) without sending it; [Publisher.Send] sends it. Event
// times must not go backwards, nor fall at or before a heartbeat already
// sent.
func (p *Publisher[V]) Record(key string, v V, t time.Time) (Message, error) {
	data, err := p.enc(v)
	if err != nil {
		return Message{}, fmt.Errorf("natsfeed: encode %s %q: %w", p.source, key, err)
	}
	if data == nil {
		data = []byte{}
	}
	return p.record(key, data, false, t)
}

// RecordDelete numbers and keeps the deletion of key at event time t
// without sending it.
func (p *Publisher[V]) RecordDelete(key string, t time.Time) (Message, error) {
	return p.record(key, nil, true, t)
}

func (p *Publisher[V]) record(key string, data []byte, del bool, t time.Time) (Message, error) {
	if err := checkDotted("key", key); err != nil {
		return Message{}, err
	}
	if t.IsZero() {
		return Message{}, fmt.Errorf("natsfeed: %s %q: an update needs its event time", p.source, key)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if t.Before(p.lastT) {
		return Message{}, fmt.Errorf("natsfeed: %s %q: event time %v is before %v, already recorded: event times never go backwards",
			p.source, key, t, p.lastT)
	}
	if !p.hbT.IsZero() && !t.After(p.hbT) {
		return Message{}, fmt.Errorf("natsfeed: %s %q: event time %v is not after %v, which a heartbeat announced complete",
			p.source, key, t, p.hbT)
	}
	p.seq++
	p.lastT = t
	m := Message{Key: key, Seq: p.seq, Time: t, Data: data, Delete: del}
	p.hist[p.seq%uint64(len(p.hist))] = m
	if del {
		delete(p.state, key)
	} else {
		p.state[key] = data
	}
	return m, nil
}

// Send publishes a recorded update (again, if it was sent before).
func (p *Publisher[V]) Send(m Message) error { return p.send(m, false) }

func (p *Publisher[V]) send(m Message, resent bool) error {
	h := nats.Header{HeaderSeq: {fmtUint(m.Seq)}, HeaderTime: {fmtTime(m.Time)}}
	if m.Delete {
		h[HeaderDelete] = []string{"1"}
	}
	if resent {
		h[HeaderResent] = []string{"1"}
	}
	if err := p.nc.PublishMsg(&nats.Msg{Subject: UpdateSubject(p.prefix, p.source, m.Key), Header: h, Data: m.Data}); err != nil {
		return fmt.Errorf("natsfeed: publish %s seq %d: %w", p.source, m.Seq, err)
	}
	return nil
}

// Publish records an update of key to v at event time t and sends it; it
// returns the update's sequence number.
func (p *Publisher[V]) Publish(key string, v V, t time.Time) (uint64, error) {
	m, err := p.Record(key, v, t)
	if err != nil {
		return 0, err
	}
	return m.Seq, p.Send(m)
}

// Heartbeat announces that every update with event time at or before t has
// been sent, the last one being the last recorded. t must not be before the
// last update recorded.
func (p *Publisher[V]) Heartbeat(t time.Time) error {
	p.mu.Lock()
	if t.IsZero() || t.Before(p.lastT) {
		last := p.lastT
		p.mu.Unlock()
		return fmt.Errorf("natsfeed: %s heartbeat at %v: want a time at or after the last update's, %v", p.source, t, last)
	}
	p.lastT, p.hbT = t, t
	seq := p.seq
	p.mu.Unlock()
	h := nats.Header{HeaderSeq: {fmtUint(seq)}, HeaderTime: {fmtTime(t)}}
	if err := p.nc.PublishMsg(&nats.Msg{Subject: HeartbeatSubject(p.prefix, p.source), Header: h}); err != nil {
		return fmt.Errorf("natsfeed: publish %s heartbeat: %w", p.source, err)
	}
	return nil
}

// Resend sends the kept updates first to last again, marked as resent, and
// returns how many it sent. It refuses a range that is empty, runs past the
// last recorded update, or starts before the oldest kept one.
func (p *Publisher[V]) Resend(first, last uint64) (int, error) {
	p.mu.Lock()
	n := uint64(len(p.hist))
	oldest := uint64(1)
	if p.seq > n {
		oldest = p.seq - n + 1
	}
	switch {
	case first == 0 || last < first:
		p.mu.Unlock()
		return 0, fmt.Errorf("natsfeed: %s resend %d-%d: want 1 <= first <= last", p.source, first, last)
	case last > p.seq:
		seq := p.seq
		p.mu.Unlock()
		return 0, fmt.Errorf("natsfeed: %s resend %d-%d: only %d updates were recorded", p.source, first, last, seq)
	case first < oldest:
		p.mu.Unlock()
		return 0, fmt.Errorf("natsfeed: %s resend %d-%d: only updates from %d are kept: ask for an image", p.source, first, last, oldest)
	}
	ms := make([]Message, 0, last-first+1)
	for q := first; q <= last; q++ {
		ms = append(ms, p.hist[q%n])
	}
	p.mu.Unlock()
	for i, m := range ms {
		if err := p.send(m, true); err != nil {
			return i, err
		}
	}
	return len(ms), nil
}

// ResendRequest is a feed's request to send updates again, handed to
// [PublisherConfig.OnResend].
type ResendRequest struct {
	First, Last uint64
	answer      func()
	once        sync.Once
}

// Answer sends the requested updates again and replies to the feed. Calls
// after the first do nothing.
func (r *ResendRequest) Answer() { r.once.Do(r.answer) }

func (p *Publisher[V]) onResend(m *nats.Msg) {
	first, err1 := parseSeq(HeaderFirst, m.Header.Get(HeaderFirst), false)
	last, err2 := parseSeq(HeaderLast, m.Header.Get(HeaderLast), false)
	if err := errors.Join(err1, err2); err != nil {
		p.reply(m, 0, err)
		return
	}
	r := &ResendRequest{First: first, Last: last}
	r.answer = func() {
		n, err := p.Resend(first, last)
		p.reply(m, n, err)
	}
	if p.onRe != nil {
		p.onRe(r)
		return
	}
	r.Answer()
}

func (p *Publisher[V]) reply(m *nats.Msg, n int, err error) {
	if m.Reply == "" {
		return
	}
	h := nats.Header{HeaderCount: {fmtUint(uint64(n))}}
	if err != nil {
		h[HeaderError] = []string{err.Error()}
	}
	_ = m.RespondMsg(&nats.Msg{Header: h}) // a lost reply shows as the feed's timeout
}

// image encodes the source's current state: its sequence number, its time
// and the entries sorted by key.
func (p *Publisher[V]) image() (uint64, time.Time, []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := make([]string, 0, len(p.state))
	size := 0
	for k, v := range p.state {
		keys = append(keys, k)
		size += len(k) + len(v) + 4
	}
	slices.Sort(keys)
	body := make([]byte, 0, size)
	for _, k := range keys {
		body = appendEntry(body, k, p.state[k])
	}
	return p.seq, p.lastT, body
}

func (p *Publisher[V]) onImage(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	seq, t, body := p.image()
	h := nats.Header{HeaderSeq: {fmtUint(seq)}}
	if seq > 0 {
		h[HeaderTime] = []string{fmtTime(t)}
	}
	if err := m.RespondMsg(&nats.Msg{Header: h, Data: body}); err != nil {
		// Too large for the connection, most likely: say so rather than
		// leave the feed waiting for its timeout.
		_ = m.RespondMsg(&nats.Msg{Header: nats.Header{HeaderError: {fmt.Sprintf("natsfeed: %s image of %d bytes: %v", p.source, len(body), err)}}})
	}
}

// Close stops answering requests. It does not close the connection.
func (p *Publisher[V]) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	subs := p.subs
	p.mu.Unlock()
	var errs []error
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
