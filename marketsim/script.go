package marketsim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Quote is one venue's top of book for a symbol: the best price it will buy
// at (Bid) and sell at (Ask), in cents.
type Quote struct {
	Bid int64 `json:"bid"`
	Ask int64 `json:"ask"`
}

// Role is what a simulated venue does wrong, if anything.
type Role uint8

const (
	// Clean venues send every quote once, in order.
	Clean Role = iota
	// Lossy venues lose a quote now and then (a gap) and send it again
	// when asked, some milliseconds later.
	Lossy
	// Silent venues stop sending anything, heartbeats included, for
	// Config.SilentFor every Config.SilentEvery, from Config.SilentAt.
	Silent
	// Late venues hold a quote back now and then and send it after later
	// ones: it arrives late, out of order.
	Late
)

// String returns the role in a word or two.
func (r Role) String() string {
	switch r {
	case Clean:
		return "clean"
	case Lossy:
		return "lossy"
	case Silent:
		return "goes silent"
	case Late:
		return "late"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// MaxVenues is the most venues a market simulates.
const MaxVenues = 16

var venueNames = [MaxVenues]string{"XNAS", "ARCX", "BATS", "EDGX", "IEXG", "MEMX", "XCHI", "XBOS",
	"EPRL", "LTSE", "XPHL", "BATY", "EDGA", "XCIS", "MIAX", "XASE"}

// Config describes a simulated market. A nil *Config means every default;
// each field's zero value is its default.
type Config struct {
	// Seed makes the market reproducible: the same seed and config give
	// the same quotes, losses, delays and silences. Default 0 (a seed like
	// any other).
	Seed uint64
	// Venues is how many venues quote, 1 to MaxVenues. The second is
	// Lossy, the third Silent, the fourth Late, the rest Clean. Default 4.
	Venues int
	// Symbols is how many symbols are quoted, 1 to 100,000. Default 300.
	Symbols int
	// Rate is how many quotes each venue sends a second, 1 to 1,000,000.
	// Default 2,000.
	Rate int
	// Heartbeat is how often each venue announces its progress, 1ms to
	// 1s. Default 10ms.
	Heartbeat time.Duration
	// SilentAt, SilentFor and SilentEvery time the Silent venue's
	// silences: the first at SilentAt after the start, each lasting
	// SilentFor, one every SilentEvery. Defaults 3s, 2s and 20s.
	SilentAt, SilentFor, SilentEvery time.Duration
	// LossEvery and LateEvery are the mean number of quotes between a loss
	// (Lossy venue) and between quotes held back (Late venue). Defaults
	// 2,000 and 1,000.
	LossEvery, LateEvery int
}

// withDefaults validates cfg and fills in its defaults; the error joins every
// problem found.
func withDefaults(cfg *Config) (Config, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Venues, 4)
	def(&c.Symbols, 300)
	def(&c.Rate, 2000)
	def(&c.LossEvery, 2000)
	def(&c.LateEvery, 1000)
	defD(&c.Heartbeat, 10*time.Millisecond)
	defD(&c.SilentAt, 3*time.Second)
	defD(&c.SilentFor, 2*time.Second)
	defD(&c.SilentEvery, 20*time.Second)
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("marketsim: "+format, args...)) }
	if c.Venues < 1 || c.Venues > MaxVenues {
		bad("Venues is %d: want 1 to %d", c.Venues, MaxVenues)
	}
	if c.Symbols < 1 || c.Symbols > 100_000 {
		bad("Symbols is %d: want 1 to 100000", c.Symbols)
	}
	if c.Rate < 1 || c.Rate > 1_000_000 {
		bad("Rate is %d quotes a second: want 1 to 1000000", c.Rate)
	}
	if c.Heartbeat < time.Millisecond || c.Heartbeat > time.Second {
		bad("Heartbeat is %v: want 1ms to 1s", c.Heartbeat)
	}
	if c.SilentAt < 0 || c.SilentFor < 0 || c.SilentEvery < 0 {
		bad("SilentAt, SilentFor and SilentEvery are %v, %v and %v: want none negative", c.SilentAt, c.SilentFor, c.SilentEvery)
	} else if c.SilentFor >= c.SilentEvery {
		bad("SilentFor %v is not shorter than SilentEvery %v: the venue would never speak", c.SilentFor, c.SilentEvery)
	}
	if c.LossEvery < 0 || c.LateEvery < 0 {
		bad("LossEvery and LateEvery are %d and %d: want 0 (default) or more", c.LossEvery, c.LateEvery)
	}
	return c, errors.Join(errs...)
}

// Kind says what an Event is.
type Kind uint8

const (
	// KindQuote is a quote update.
	KindQuote Kind = iota + 1
	// KindHeartbeat announces a venue's progress.
	KindHeartbeat
)

// Event is one thing a venue does at one moment of the simulation.
type Event struct {
	// At is the event time, as an offset from the simulation's start.
	At time.Duration
	// Venue indexes Script.Venues.
	Venue int
	Kind  Kind
	// Symbol indexes Script.Symbols (quotes only).
	Symbol int
	Quote  Quote
	// Lost: the quote is not sent until asked for (Lossy venues).
	Lost bool
	// Delay: the quote is sent this long after the quotes that follow it
	// began to go out (Late venues); zero for every other.
	Delay time.Duration
}

// Venue describes one simulated venue.
type Venue struct {
	Name    string
	Role    Role
	Latency time.Duration // how far its event times lag the wall clock when sent
	Spread  int64         // its usual quoted spread, cents
}

// Script generates a market's events, deterministically for its Config: a
// pure function of the seed, with no clock and no I/O. Create one with
// [NewScript]. It is not safe for concurrent use.
type Script struct {
	cfg     Config
	venues  []Venue
	symbols []string
	mid     []int64
	market  *rand.Rand
	rngs    []*rand.Rand
	tick    int64 // next tick to generate, in ms
	hbTicks int64
	moves   int64 // mid moves a second, over all symbols
	buf     []Event
}

// tick is the simulation's time step.
const tick = time.Millisecond

// NewScript returns the script of the market cfg describes (nil: every
// default), or an error naming every problem of cfg.
func NewScript(cfg *Config) (*Script, error) {
	c, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	s := &Script{
		cfg:     c,
		symbols: Symbols(c.Symbols),
		mid:     make([]int64, c.Symbols),
		market:  rand.New(rand.NewPCG(c.Seed, 0x6d61726b6574)),
		hbTicks: int64(c.Heartbeat / tick),
		moves:   2 * int64(c.Symbols), // each mid moves twice a second on average
	}
	for i := range s.mid {
		s.mid[i] = 1000 + s.market.Int64N(40000) // $10 to $410
	}
	for v := range c.Venues {
		role := Clean
		if v >= 1 && v <= 3 {
			role = Role(v)
		}
		s.venues = append(s.venues, Venue{
			Name:    venueNames[v],
			Role:    role,
			Latency: time.Duration(1+v%3) * time.Millisecond,
			Spread:  int64(2 + v%3),
		})
		s.rngs = append(s.rngs, rand.New(rand.NewPCG(c.Seed, uint64(v)+1)))
	}
	return s, nil
}

// Venues returns the venues, in the order of Event.Venue. The slice is the
// caller's.
func (s *Script) Venues() []Venue { return append([]Venue(nil), s.venues...) }

// Symbols returns the symbols quoted, in the order of Event.Symbol. The
// slice is shared: do not modify it.
func (s *Script) Symbols() []string { return s.symbols }

// Config returns the script's config with its defaults filled in.
func (s *Script) Config() Config { return s.cfg }

// Silent reports whether venue v is silent at offset at.
func (s *Script) Silent(v int, at time.Duration) bool {
	if s.venues[v].Role != Silent || at < s.cfg.SilentAt {
		return false
	}
	return (at-s.cfg.SilentAt)%s.cfg.SilentEvery < s.cfg.SilentFor
}

// Next returns the events of the next millisecond of the simulation, in the
// order they happen: the venues in order, each venue's quotes and then its
// heartbeat. The slice is reused by the next call.
func (s *Script) Next() []Event {
	out := s.buf[:0]
	k := s.tick
	s.tick++
	at := time.Duration(k) * tick
	moves := int((k+1)*s.moves/1000 - k*s.moves/1000)
	for range moves { // the market moves
		i := s.market.IntN(len(s.mid))
		s.mid[i] += 2*s.market.Int64N(2) - 1
		if s.mid[i] < 100 {
			s.mid[i] = 100
		}
	}
	rate := int64(s.cfg.Rate)
	n := int((k+1)*rate/1000 - k*rate/1000)
	for v, ven := range s.venues {
		r := s.rngs[v]
		silent := s.Silent(v, at)
		for range n {
			i := r.IntN(len(s.mid))
			bid := s.mid[i] - ven.Spread/2
			if r.IntN(20) == 0 {
				bid += 2*r.Int64N(2) - 1 // venues disagree by a cent now and then
			}
			e := Event{At: at, Venue: v, Kind: KindQuote, Symbol: i, Quote: Quote{Bid: bid, Ask: bid + ven.Spread}}
			switch ven.Role {
			case Lossy:
				e.Lost = r.IntN(s.cfg.LossEvery) == 0
			case Late:
				if r.IntN(s.cfg.LateEvery) == 0 {
					e.Delay = time.Duration(20+r.IntN(100)) * time.Millisecond
				}
			}
			if !silent {
				out = append(out, e)
			}
		}
		if k%s.hbTicks == 0 && !silent {
			out = append(out, Event{At: at, Venue: v, Kind: KindHeartbeat})
		}
	}
	s.buf = out
	return out
}

// Symbols returns n symbol names: ten well-known tickers, then S010, S011, ….
func Symbols(n int) []string {
	known := []string{"AAPL", "MSFT", "AMZN", "NVDA", "GOOG", "META", "TSLA", "AVGO", "JPM", "XOM"}
	out := make([]string, n)
	for i := range out {
		if i < len(known) {
			out[i] = known[i]
		} else {
			out[i] = fmt.Sprintf("S%03d", i)
		}
	}
	return out
}
