package okx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/internal/wire"
)

// Kind says what a decoded message is.
type Kind uint8

// The kinds of message [Decode] tells apart.
const (
	// Other is a message this package does not use: another channel, an
	// event ("subscribe", "error"), the text "pong".
	Other Kind = iota
	// Snapshot is an order book push with action "snapshot": a full image.
	Snapshot
	// Update is an order book push with action "update": changed levels,
	// a quantity of 0 deleting one. An update with no levels whose SeqID
	// equals its PrevSeqID is OKX's sign of life on a quiet book.
	Update
	// BBO is a bbo-tbt push: the best bid and offer, with the book's SeqID.
	BBO
)

// Book is one entry of a push's data array.
type Book struct {
	Asks exchange.Levels `json:"asks"`
	Bids exchange.Levels `json:"bids"`
	// Time is the book's generation time ("ts", Unix milliseconds).
	Time time.Time `json:"-"`
	TS   string    `json:"ts"`
	// Checksum is the CRC32 of the top 25 levels after this push, as a
	// signed integer. OKX deprecated the field in 2026 and sends 0 since:
	// HasChecksum is false when it is absent or 0.
	Checksum    int32 `json:"checksum"`
	HasChecksum bool  `json:"-"`
	// SeqID numbers the book's state; PrevSeqID is the SeqID of the push
	// before (-1 on a snapshot).
	SeqID     int64 `json:"seqId"`
	PrevSeqID int64 `json:"prevSeqId"`
}

// Message is one decoded v5 WebSocket message. The zero value is a message
// of kind Other.
type Message struct {
	Kind Kind
	// Event is the "event" field of an event message.
	Event string
	// Channel and InstID are the push's "arg".
	Channel string
	InstID  string
	// Books holds the push's data entries (OKX sends one).
	Books []Book
}

// channels lists the order book channels Decode reads, and whether each
// sends seqId/prevSeqId chains and checksums.
var channels = map[string]bool{
	"books": true, "books-l2-tbt": true, "books50-l2-tbt": true, "bbo-tbt": false,
}

// Decode decodes one WebSocket message of OKX's v5 public API. Order book
// pushes are decoded fully; events and other channels only as far as telling
// them apart. A message that is not JSON (other than "pong"), or a book push
// not in the documented form, is an error wrapping [exchange.ErrFormat] or
// [exchange.ErrDecimal] that says what was wrong.
func Decode(msg []byte) (Message, error) {
	var m Message
	b := bytes.TrimSpace(msg)
	if string(b) == "pong" {
		return m, nil
	}
	var env struct {
		Event string `json:"event"`
		Arg   struct {
			Channel string `json:"channel"`
			InstID  string `json:"instId"`
		} `json:"arg"`
		Action string          `json:"action"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return m, wire.Wrap("okx", err)
	}
	m.Event, m.Channel, m.InstID = env.Event, env.Arg.Channel, env.Arg.InstID
	chained, book := channels[env.Arg.Channel]
	if env.Event != "" || !book || env.Data == nil {
		return m, nil
	}
	if env.Arg.InstID == "" {
		return m, fmt.Errorf("%w: okx: %s push without arg.instId", exchange.ErrFormat, env.Arg.Channel)
	}
	switch {
	case !chained:
		m.Kind = BBO
	case env.Action == "snapshot":
		m.Kind = Snapshot
	case env.Action == "update":
		m.Kind = Update
	default:
		return m, fmt.Errorf("%w: okx: %s push with action %q; want snapshot or update", exchange.ErrFormat, env.Arg.Channel, env.Action)
	}
	if err := json.Unmarshal(env.Data, &m.Books); err != nil {
		return m, wire.Wrap("okx: data", err)
	}
	if len(m.Books) == 0 {
		return m, fmt.Errorf("%w: okx: %s push with empty data", exchange.ErrFormat, env.Arg.Channel)
	}
	for i := range m.Books {
		bk := &m.Books[i]
		ms, err := strconv.ParseInt(bk.TS, 10, 64)
		if err != nil || ms < 0 || ms > 1<<43 {
			return m, fmt.Errorf("%w: okx: data %d: ts %q: want Unix milliseconds as a string", exchange.ErrFormat, i, bk.TS)
		}
		bk.Time = time.UnixMilli(ms).UTC()
		bk.HasChecksum = chained && bk.Checksum != 0
		if bk.SeqID < 0 {
			return m, fmt.Errorf("%w: okx: data %d: seqId %d is negative", exchange.ErrFormat, i, bk.SeqID)
		}
		if chained && m.Kind == Update && bk.PrevSeqID < 0 {
			return m, fmt.Errorf("%w: okx: data %d: an update's prevSeqId (%d) must name the previous push", exchange.ErrFormat, i, bk.PrevSeqID)
		}
	}
	return m, nil
}
