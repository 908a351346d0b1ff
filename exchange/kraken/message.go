package kraken

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/internal/wire"
)

// Kind says what a decoded message is.
type Kind uint8

// The kinds of message [Decode] tells apart.
const (
	// Other is a message this package does not use: another channel (trade,
	// spread, ticker), a subscription or system status event, a pong.
	Other Kind = iota
	// Heartbeat is {"event":"heartbeat"}, sent on a quiet connection.
	Heartbeat
	// Snapshot is a book snapshot ("as"/"bs"): the book's full image.
	Snapshot
	// Update is a book update ("a"/"b", with the checksum "c").
	Update
)

// Level is a price level as a v1 book message carries it.
type Level struct {
	Price  exchange.Decimal
	Volume exchange.Decimal
	// Time is the level's last change, as Kraken stamped it.
	Time time.Time
	// Republish marks a level resent because it re-entered the subscribed
	// depth (the "r" flag), not because it changed.
	Republish bool
}

// Message is one decoded v1 WebSocket message. For a book message, Asks and
// Bids hold the levels in the order sent (for an update the order matters:
// a later entry for a price supersedes an earlier one). The zero value is
// a message of kind Other.
type Message struct {
	Kind Kind
	// Event is the "event" field of an event message ("heartbeat",
	// "systemStatus", …).
	Event string
	// ChannelID is the numeric channel ID of a channel message.
	ChannelID int64
	// Channel is the channel name, such as "book-10" or "spread".
	Channel string
	// Depth is the subscribed depth named by a book channel ("book-10": 10).
	Depth int
	// Pair is the pair, such as "XBT/USD".
	Pair string
	Asks []Level
	Bids []Level
	// Checksum is the CRC32 sent in "c", if HasChecksum.
	Checksum    uint32
	HasChecksum bool
}

// Time returns the latest level time in a book message, or the zero time
// if it has no levels.
func (m *Message) Time() time.Time {
	var t time.Time
	for _, side := range [2][]Level{m.Asks, m.Bids} {
		for _, l := range side {
			if l.Time.After(t) {
				t = l.Time
			}
		}
	}
	return t
}

// Decode decodes one WebSocket message of Kraken's v1 API. Book messages
// are decoded fully; events and other channels only as far as telling them
// apart. A message that is not JSON, or a book message not in the documented
// form, is an error wrapping [exchange.ErrFormat] or [exchange.ErrDecimal]
// that says what was wrong.
func Decode(msg []byte) (Message, error) {
	var m Message
	b := bytes.TrimLeft(msg, " \t\r\n")
	if len(b) == 0 {
		return m, fmt.Errorf("%w: kraken: empty message", exchange.ErrFormat)
	}
	switch b[0] {
	case '{':
		var ev struct {
			Event string `json:"event"`
		}
		if err := json.Unmarshal(b, &ev); err != nil {
			return m, fmt.Errorf("%w: kraken: event: %v", exchange.ErrFormat, err)
		}
		m.Event = ev.Event
		if ev.Event == "heartbeat" {
			m.Kind = Heartbeat
		}
		return m, nil
	case '[':
	default:
		return m, fmt.Errorf("%w: kraken: want a JSON object or array", exchange.ErrFormat)
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(b, &parts); err != nil {
		return m, fmt.Errorf("%w: kraken: %v", exchange.ErrFormat, err)
	}
	if len(parts) < 4 {
		return m, fmt.Errorf("%w: kraken: a channel message has at least 4 elements (id, payload, channel, pair), got %d", exchange.ErrFormat, len(parts))
	}
	n := len(parts)
	if err := json.Unmarshal(parts[0], &m.ChannelID); err != nil {
		return m, fmt.Errorf("%w: kraken: channel id: want an integer: %v", exchange.ErrFormat, err)
	}
	if err := json.Unmarshal(parts[n-2], &m.Channel); err != nil {
		return m, fmt.Errorf("%w: kraken: channel name: want a string: %v", exchange.ErrFormat, err)
	}
	if err := json.Unmarshal(parts[n-1], &m.Pair); err != nil {
		return m, fmt.Errorf("%w: kraken: pair: want a string: %v", exchange.ErrFormat, err)
	}
	depth, ok := strings.CutPrefix(m.Channel, "book-")
	if !ok {
		return m, nil // another channel
	}
	d, err := strconv.Atoi(depth)
	if err != nil || d <= 0 {
		return m, fmt.Errorf("%w: kraken: channel %q: want book-N with a positive depth N", exchange.ErrFormat, m.Channel)
	}
	m.Depth = d
	if n > 5 {
		return m, fmt.Errorf("%w: kraken: a book message has one or two payload objects, got %d", exchange.ErrFormat, n-3)
	}
	for i, p := range parts[1 : n-2] {
		var o struct {
			As *levels `json:"as"`
			Bs *levels `json:"bs"`
			A  *levels `json:"a"`
			B  *levels `json:"b"`
			C  *string `json:"c"`
		}
		if err := json.Unmarshal(p, &o); err != nil {
			return m, wire.Wrap(fmt.Sprintf("kraken: book payload %d", i), err)
		}
		snap := o.As != nil || o.Bs != nil
		upd := o.A != nil || o.B != nil || o.C != nil
		switch {
		case snap && upd:
			return m, fmt.Errorf("%w: kraken: book payload %d mixes snapshot (as, bs) and update (a, b, c) fields", exchange.ErrFormat, i)
		case !snap && !upd:
			return m, fmt.Errorf("%w: kraken: book payload %d has none of as, bs, a, b", exchange.ErrFormat, i)
		case snap && m.Kind == Update, upd && m.Kind == Snapshot:
			return m, fmt.Errorf("%w: kraken: book message mixes snapshot and update payloads", exchange.ErrFormat)
		}
		if snap {
			m.Kind = Snapshot
			m.Asks = appendLevels(m.Asks, o.As)
			m.Bids = appendLevels(m.Bids, o.Bs)
			continue
		}
		m.Kind = Update
		m.Asks = appendLevels(m.Asks, o.A)
		m.Bids = appendLevels(m.Bids, o.B)
		if o.C != nil {
			if m.HasChecksum {
				return m, fmt.Errorf("%w: kraken: two checksums in one book message", exchange.ErrFormat)
			}
			c, err := strconv.ParseUint(*o.C, 10, 32)
			if err != nil {
				return m, fmt.Errorf("%w: kraken: checksum %q: want an unsigned 32-bit decimal", exchange.ErrFormat, *o.C)
			}
			m.Checksum, m.HasChecksum = uint32(c), true
		}
	}
	return m, nil
}

func appendLevels(dst []Level, ls *levels) []Level {
	if ls == nil {
		return dst
	}
	return append(dst, (*ls)...)
}

type levels []Level

// UnmarshalJSON decodes [["price","volume","time"(,"r")],…].
func (ls *levels) UnmarshalJSON(data []byte) error {
	out := (*ls)[:0]
	err := exchange.ScanArrays(data, 3, 4, func(f [][]byte) error {
		var l Level
		var err error
		if l.Price, err = exchange.ParseDecimal(f[0]); err != nil {
			return fmt.Errorf("price: %w", err)
		}
		if l.Volume, err = exchange.ParseDecimal(f[1]); err != nil {
			return fmt.Errorf("volume: %w", err)
		}
		ts, err := exchange.ParseDecimal(f[2])
		if err != nil {
			return fmt.Errorf("time: %w", err)
		}
		if l.Time, err = unixTime(ts); err != nil {
			return err
		}
		if len(f) == 4 {
			if string(f[3]) != "r" {
				return fmt.Errorf("%w: fourth field %q: want \"r\" (republish)", exchange.ErrFormat, f[3])
			}
			l.Republish = true
		}
		out = append(out, l)
		return nil
	})
	if err != nil {
		return err
	}
	*ls = out
	return nil
}

// unixTime converts seconds since the Unix epoch, with a fraction, to a
// time, refusing what time.Time cannot hold as Unix nanoseconds.
func unixTime(d exchange.Decimal) (time.Time, error) {
	const maxSec = 1 << 33 // year 2242: far beyond any stamp Kraken sends
	scale := uint64(1)
	for range d.Scale {
		scale *= 10
	}
	sec := d.Units / scale
	if sec >= maxSec {
		return time.Time{}, fmt.Errorf("%w: time %s: seconds since 1970 out of range", exchange.ErrFormat, d)
	}
	frac := d.Units % scale
	// Nanoseconds of the fraction, truncated beyond 9 digits.
	var nsec uint64
	switch {
	case d.Scale <= 9:
		nsec = frac
		for range 9 - int(d.Scale) {
			nsec *= 10
		}
	default:
		div := uint64(1)
		for range int(d.Scale) - 9 {
			div *= 10
		}
		nsec = frac / div
	}
	return time.Unix(int64(sec), int64(nsec)).UTC(), nil
}
