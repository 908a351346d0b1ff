package marketsim

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gather-go/gather/snapshot/natsfeed"
)

// DefaultPrefix is the subject prefix of a market's feeds by default.
const DefaultPrefix = "gather.market"

// Market runs a Script in real time: one [natsfeed.Publisher] per venue
// publishes its quotes and heartbeats on NATS, answers resend requests (a
// Lossy venue some milliseconds late) and serves images to feeds that join
// late. Event times are the start time plus the script's offsets, less the
// venue's latency.
//
// Create one with [Start]; Close stops it. It owns one goroutine, which
// Close waits for. Its methods are safe for concurrent use.
type Market struct {
	script *Script
	venues []Venue
	pubs   []*natsfeed.Publisher[Quote]
	prefix string
	start  time.Time
	stats  []venueStats

	mu      sync.Mutex
	resends []pendingResend // answered by the loop when due
	wake    chan struct{}   // size 1: a pending wake-up is enough

	cancel context.CancelFunc
	done   chan struct{}
	err    error // the loop's error, once done
}

type venueStats struct {
	sent, lost, delayed, resends, heartbeats atomic.Uint64
}

// VenueStats are one venue's running totals, and whether it is silent now.
type VenueStats struct {
	Venue
	Sent       uint64 // quotes sent (resends excluded)
	Lost       uint64 // quotes not sent until asked for
	Delayed    uint64 // quotes held back and sent late
	Resends    uint64 // resend requests answered
	Heartbeats uint64
	Silent     bool
	Seq        uint64 // last sequence number recorded
}

type pendingResend struct {
	due time.Time
	r   *natsfeed.ResendRequest
}

// Start starts the market cfg describes (nil: every default) on nc, under
// the subject prefix (empty: DefaultPrefix). The caller keeps owning nc and
// closes it after Close.
func Start(nc *nats.Conn, prefix string, cfg *Config) (*Market, error) {
	s, err := NewScript(cfg)
	if err != nil {
		return nil, err
	}
	if prefix == "" {
		prefix = DefaultPrefix
	}
	m := &Market{script: s, venues: s.Venues(), prefix: prefix, wake: make(chan struct{}, 1), done: make(chan struct{})}
	m.stats = make([]venueStats, len(m.venues))
	for v, ven := range m.venues {
		pc := &natsfeed.PublisherConfig[Quote]{Prefix: prefix, Source: ven.Name}
		if ven.Role == Lossy {
			v := v
			pc.OnResend = func(r *natsfeed.ResendRequest) { m.deferResend(v, r) }
		} else {
			st := &m.stats[v]
			pc.OnResend = func(r *natsfeed.ResendRequest) { st.resends.Add(1); r.Answer() }
		}
		p, err := natsfeed.NewPublisher(nc, pc)
		if err != nil {
			m.closePubs()
			return nil, err
		}
		m.pubs = append(m.pubs, p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.start = time.Now()
	go m.loop(ctx)
	return m, nil
}

// Prefix returns the subject prefix the venues publish under.
func (m *Market) Prefix() string { return m.prefix }

// Venues returns the venues. The slice is the caller's.
func (m *Market) Venues() []Venue { return append([]Venue(nil), m.venues...) }

// Symbols returns the symbols quoted. The slice is shared: do not modify it.
func (m *Market) Symbols() []string { return m.script.Symbols() }

// Config returns the market's config with its defaults filled in.
func (m *Market) Config() Config { return m.script.Config() }

// Stats returns every venue's running totals, in the order of Venues.
func (m *Market) Stats() []VenueStats {
	out := make([]VenueStats, len(m.venues))
	el := time.Since(m.start)
	for v := range out {
		st := &m.stats[v]
		out[v] = VenueStats{
			Venue: m.venues[v], Sent: st.sent.Load(), Lost: st.lost.Load(), Delayed: st.delayed.Load(),
			Resends: st.resends.Load(), Heartbeats: st.heartbeats.Load(), Silent: m.script.Silent(v, el), Seq: m.pubs[v].Seq(),
		}
	}
	return out
}

// deferResend queues a Lossy venue's resend, answered 5 to 100 ms later (a
// function of the request, so a run's delays do not depend on scheduling):
// long enough, at times, for a cut to be taken while the gap is open.
func (m *Market) deferResend(v int, r *natsfeed.ResendRequest) {
	x := m.script.cfg.Seed ^ r.First*0x9e3779b97f4a7c15 ^ r.Last
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 29
	delay := 5*time.Millisecond + time.Duration(x%96)*time.Millisecond
	m.stats[v].resends.Add(1)
	m.mu.Lock()
	m.resends = append(m.resends, pendingResend{due: time.Now().Add(delay), r: r})
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// held is a quote held back to be sent late.
type held struct {
	due time.Time
	ord uint64
	v   int
	msg natsfeed.Message
}

type heldHeap []held

func (h heldHeap) Len() int { return len(h) }
func (h heldHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].ord < h[j].ord
}
func (h heldHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *heldHeap) Push(x any)   { *h = append(*h, x.(held)) }
func (h *heldHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (m *Market) loop(ctx context.Context) {
	defer close(m.done)
	var late heldHeap
	var ord uint64
	symbols := m.script.Symbols()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := time.Now()
		el := now.Sub(m.start)
		// Generate and send every millisecond that has come.
		for time.Duration(m.script.tick)*tick <= el {
			for _, e := range m.script.Next() {
				ven := &m.venues[e.Venue]
				p, st := m.pubs[e.Venue], &m.stats[e.Venue]
				t := m.start.Add(e.At - ven.Latency)
				var err error
				switch e.Kind {
				case KindHeartbeat:
					err = p.Heartbeat(t)
					st.heartbeats.Add(1)
				case KindQuote:
					var msg natsfeed.Message
					if msg, err = p.Record(symbols[e.Symbol], e.Quote, t); err != nil {
						break
					}
					switch {
					case e.Lost:
						st.lost.Add(1)
					case e.Delay > 0:
						st.delayed.Add(1)
						ord++
						heap.Push(&late, held{due: now.Add(e.Delay), ord: ord, v: e.Venue, msg: msg})
					default:
						st.sent.Add(1)
						err = p.Send(msg)
					}
				}
				if err != nil {
					m.fail(err)
					return
				}
			}
		}
		for late.Len() > 0 && !late[0].due.After(now) {
			h := heap.Pop(&late).(held)
			m.stats[h.v].sent.Add(1)
			if err := m.pubs[h.v].Send(h.msg); err != nil {
				m.fail(err)
				return
			}
		}
		next := m.start.Add(time.Duration(m.script.tick) * tick)
		if late.Len() > 0 && late[0].due.Before(next) {
			next = late[0].due
		}
		m.mu.Lock()
		var due []*natsfeed.ResendRequest
		keep := m.resends[:0]
		for _, r := range m.resends {
			switch {
			case !r.due.After(now):
				due = append(due, r.r)
			default:
				keep = append(keep, r)
				if r.due.Before(next) {
					next = r.due
				}
			}
		}
		m.resends = keep
		m.mu.Unlock()
		for _, r := range due {
			r.Answer()
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-m.wake: // Reset discards a stale tick (Go 1.23 timers)
		}
	}
}

func (m *Market) fail(err error) {
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
}

func (m *Market) closePubs() error {
	var errs []error
	for _, p := range m.pubs {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// Close stops the market and waits for its goroutine. It returns the error
// that stopped the market early (a publish that failed), if any.
func (m *Market) Close() error {
	m.cancel()
	<-m.done
	err := m.closePubs()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return fmt.Errorf("marketsim: stopped early: %w", m.err)
	}
	return err
}

// Err returns the error that stopped the market early, or nil while it runs.
func (m *Market) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}
