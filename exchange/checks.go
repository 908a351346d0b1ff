package exchange

import (
	"errors"
	"fmt"
	"sync"

	"github.com/gather-go/gather/snapshot"
)

// ErrMismatch: a venue's checksum or book ticker disagreed with the
// collector's book after the message it refers to. The collector then marks
// the source invalid until a new image (see [snapshot.Config.Check]).
var ErrMismatch = errors.New("exchange: book disagrees with the venue")

// MaxPendingChecks bounds, per source, the checks waiting for the message
// they refer to; beyond it the oldest is dropped and counted as unchecked.
const MaxPendingChecks = 1024

// ChecksumFunc computes a venue's checksum from the state of a book.
type ChecksumFunc func(v *snapshot.View[Key, Level]) uint32

// Checker matches what venues say about their books (checksums, book
// tickers) against the collector's state right after the message they refer
// to. Install its Check method as [snapshot.Config.Check]; the feed adapters
// register what to check with ExpectChecksum and ExpectTicker before they
// apply the message.
//
// The zero value checks checksums and ignores tickers; set Tickers to check
// those too. A Checker is safe for concurrent use. Memory is bounded by
// MaxPendingChecks per source.
type Checker struct {
	// Tickers makes ExpectTicker register checks; otherwise tickers are
	// ignored.
	Tickers bool

	mu                             sync.Mutex
	pending                        map[string][]expectation
	matched, mismatched, unchecked int
}

type expectation struct {
	seq      uint64
	checksum ChecksumFunc // nil for a ticker
	sum      uint32
	bid, ask Level
}

// ExpectChecksum registers that source's book, right after its message seq,
// has checksum sum as computed by fn.
func (c *Checker) ExpectChecksum(source string, seq uint64, sum uint32, fn ChecksumFunc) {
	c.expect(source, expectation{seq: seq, checksum: fn, sum: sum})
}

// ExpectTicker registers that source's best bid and ask, right after its
// message seq, are bid and ask (price and quantity). It does nothing unless
// Tickers is set.
func (c *Checker) ExpectTicker(source string, seq uint64, bid, ask Level) {
	if c.Tickers {
		c.expect(source, expectation{seq: seq, bid: bid, ask: ask})
	}
}

func (c *Checker) expect(source string, e expectation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = make(map[string][]expectation)
	}
	list := c.pending[source]
	if len(list) >= MaxPendingChecks {
		list = list[:copy(list, list[1:])]
		c.unchecked++
	}
	// Keep the list ordered by seq: tickers and messages may arrive in any
	// order, but nearly always in order, so the insertion is at the end.
	i := len(list)
	for i > 0 && list[i-1].seq > e.seq {
		i--
	}
	list = append(list, expectation{})
	copy(list[i+1:], list[i:])
	list[i] = e
	c.pending[source] = list
}

// Check is the [snapshot.Config.Check] hook: it evaluates the checks
// registered for the source's message v.Seq() against the state v shows,
// counts checks left behind for earlier messages as unchecked (their message
// was dropped, or covered by an image), and returns an error wrapping
// ErrMismatch that says what differed if any check failed.
func (c *Checker) Check(v *snapshot.View[Key, Level]) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	src, seq := v.Source(), v.Seq()
	list := c.pending[src]
	if len(list) == 0 {
		return nil
	}
	var errs []error
	n := 0
	for ; n < len(list) && list[n].seq <= seq; n++ {
		e := list[n]
		if e.seq < seq {
			c.unchecked++
			continue
		}
		if err := e.check(v); err != nil {
			c.mismatched++
			errs = append(errs, err)
		} else {
			c.matched++
		}
	}
	// Keep the list's array for the next checks of this source.
	c.pending[src] = list[:copy(list, list[n:])]
	if len(errs) > 0 {
		return fmt.Errorf("%s after message %d: %w", src, seq, errors.Join(errs...))
	}
	return nil
}

func (e *expectation) check(v *snapshot.View[Key, Level]) error {
	if e.checksum != nil {
		if got := e.checksum(v); got != e.sum {
			return fmt.Errorf("%w: checksum %d sent, the book gives %d", ErrMismatch, e.sum, got)
		}
		return nil
	}
	_, bid, okb := v.First(BidSide)
	_, ask, oka := v.First(AskSide)
	if !okb || !oka || bid.Price.Cmp(e.bid.Price) != 0 || bid.Qty.Cmp(e.bid.Qty) != 0 ||
		ask.Price.Cmp(e.ask.Price) != 0 || ask.Qty.Cmp(e.ask.Qty) != 0 {
		return fmt.Errorf("%w: ticker says bid %v ask %v, the book has bid %v ask %v",
			ErrMismatch, e.bid, e.ask, levelOr(bid, okb), levelOr(ask, oka))
	}
	return nil
}

func levelOr(l Level, ok bool) string {
	if !ok {
		return "none"
	}
	return l.String()
}

// Counts returns how many checks matched, mismatched, and could not be
// made because the message they referred to was never applied on its own.
func (c *Checker) Counts() (matched, mismatched, unchecked int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.matched, c.mismatched, c.unchecked
}
