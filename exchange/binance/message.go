package binance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/internal/wire"
)

// Kind says what a decoded stream message is.
type Kind uint8

// The kinds of stream message [Decode] tells apart.
const (
	// Other is a message this package does not use: another stream, a
	// response to a subscription request.
	Other Kind = iota
	// Depth is a depthUpdate event of the diff depth stream.
	Depth
	// Ticker is a bookTicker event: the best bid and offer as of an order
	// book update ID.
	Ticker
)

// DepthUpdate is a depthUpdate event: the levels that changed between update
// IDs First and Last (U and u), each with its new quantity (0: removed).
// Futures events also name the previous event's Last (pu).
type DepthUpdate struct {
	Symbol string
	// EventTime is "E"; TransactionTime is "T" (futures only, zero on spot).
	EventTime       time.Time
	TransactionTime time.Time
	First, Last     uint64
	// Prev is "pu" (futures only); HasPrev says it was present.
	Prev    uint64
	HasPrev bool
	Bids    exchange.Levels
	Asks    exchange.Levels
}

// BookTicker is a bookTicker event: the best bid and offer of Symbol's book
// as of order book update ID UpdateID.
type BookTicker struct {
	Symbol   string
	UpdateID uint64
	// EventTime is "E" (futures only; zero on spot).
	EventTime time.Time
	Bid, Ask  exchange.Level
}

// Message is one decoded stream message; Depth or Ticker is set according to
// Kind. The zero value is a message of kind Other.
type Message struct {
	Kind Kind
	// Stream is the stream name of a combined stream message
	// ("btcusdt@depth@100ms"), empty for a raw stream.
	Stream string
	Depth  DepthUpdate
	Ticker BookTicker
}

type wireEvent struct {
	E     string            `json:"e"`
	ETime *int64            `json:"E"`
	T     *int64            `json:"T"`
	S     string            `json:"s"`
	U     *uint64           `json:"U"`
	Lu    *uint64           `json:"u"`
	Pu    *uint64           `json:"pu"`
	B     *json.RawMessage  `json:"b"`
	A     *json.RawMessage  `json:"a"`
	BQ    *exchange.Decimal `json:"B"`
	AQ    *exchange.Decimal `json:"A"`
}

// Decode decodes one message of Binance's spot or USDⓈ-M futures market
// streams, raw ({"e":"depthUpdate",…}) or combined ({"stream":…,"data":…}).
// depthUpdate and bookTicker events are decoded fully; anything else is
// Other. A message that is not JSON, or one of these events not in the
// documented form, is an error wrapping [exchange.ErrFormat] or
// [exchange.ErrDecimal] that says what was wrong.
func Decode(msg []byte) (Message, error) {
	var m Message
	var outer struct {
		Stream *string          `json:"stream"`
		Data   *json.RawMessage `json:"data"`
	}
	b := bytes.TrimSpace(msg)
	if err := json.Unmarshal(b, &outer); err != nil {
		return m, wire.Wrap("binance", err)
	}
	if outer.Stream != nil && outer.Data != nil {
		m.Stream = *outer.Stream
		b = *outer.Data
	}
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return m, wire.Wrap("binance", err)
	}
	switch {
	case w.E == "depthUpdate":
		return decodeDepth(m, &w)
	case w.E == "bookTicker" || (w.E == "" && w.Lu != nil && w.BQ != nil && w.AQ != nil):
		return decodeTicker(m, &w)
	}
	return m, nil
}

func decodeDepth(m Message, w *wireEvent) (Message, error) {
	d := &m.Depth
	switch {
	case w.S == "":
		return m, fmt.Errorf("%w: binance: depthUpdate without a symbol (s)", exchange.ErrFormat)
	case w.U == nil || w.Lu == nil:
		return m, fmt.Errorf("%w: binance: depthUpdate %s without its update IDs (U and u)", exchange.ErrFormat, w.S)
	case *w.U == 0 || *w.U > *w.Lu:
		return m, fmt.Errorf("%w: binance: depthUpdate %s: update IDs U=%d u=%d; want 1 ≤ U ≤ u", exchange.ErrFormat, w.S, *w.U, *w.Lu)
	case w.ETime == nil:
		return m, fmt.Errorf("%w: binance: depthUpdate %s without its event time (E)", exchange.ErrFormat, w.S)
	case w.B == nil || w.A == nil:
		return m, fmt.Errorf("%w: binance: depthUpdate %s without its bids (b) and asks (a)", exchange.ErrFormat, w.S)
	}
	d.Symbol, d.First, d.Last = w.S, *w.U, *w.Lu
	var err error
	if d.EventTime, err = millis("E", *w.ETime); err != nil {
		return m, err
	}
	if w.T != nil {
		if d.TransactionTime, err = millis("T", *w.T); err != nil {
			return m, err
		}
	}
	if w.Pu != nil {
		d.Prev, d.HasPrev = *w.Pu, true
		if d.Prev >= d.Last {
			return m, fmt.Errorf("%w: binance: depthUpdate %s: pu=%d not before u=%d", exchange.ErrFormat, w.S, d.Prev, d.Last)
		}
	}
	if err := d.Bids.UnmarshalJSON(*w.B); err != nil {
		return m, wire.Wrap("binance: depthUpdate bids", err)
	}
	if err := d.Asks.UnmarshalJSON(*w.A); err != nil {
		return m, wire.Wrap("binance: depthUpdate asks", err)
	}
	m.Kind = Depth
	return m, nil
}

func decodeTicker(m Message, w *wireEvent) (Message, error) {
	t := &m.Ticker
	switch {
	case w.S == "":
		return m, fmt.Errorf("%w: binance: bookTicker without a symbol (s)", exchange.ErrFormat)
	case w.Lu == nil:
		return m, fmt.Errorf("%w: binance: bookTicker %s without its update ID (u)", exchange.ErrFormat, w.S)
	case w.B == nil || w.A == nil || w.BQ == nil || w.AQ == nil:
		return m, fmt.Errorf("%w: binance: bookTicker %s: want b, B, a and A", exchange.ErrFormat, w.S)
	}
	t.Symbol, t.UpdateID = w.S, *w.Lu
	if err := t.Bid.Price.UnmarshalJSON(*w.B); err != nil {
		return m, wire.Wrap("binance: bookTicker bid price", err)
	}
	if err := t.Ask.Price.UnmarshalJSON(*w.A); err != nil {
		return m, wire.Wrap("binance: bookTicker ask price", err)
	}
	t.Bid.Qty, t.Ask.Qty = *w.BQ, *w.AQ
	if w.ETime != nil {
		var err error
		if t.EventTime, err = millis("E", *w.ETime); err != nil {
			return m, err
		}
	}
	m.Kind = Ticker
	return m, nil
}

func millis(field string, ms int64) (time.Time, error) {
	if ms <= 0 || ms > 1<<43 {
		return time.Time{}, fmt.Errorf("%w: binance: %s=%d: want Unix milliseconds", exchange.ErrFormat, field, ms)
	}
	return time.UnixMilli(ms).UTC(), nil
}

// DepthImage is the REST order book image: the book as of update ID
// LastUpdateID. Spot images carry no time; futures images carry the event
// and transaction times (E, T).
type DepthImage struct {
	LastUpdateID    uint64          `json:"lastUpdateId"`
	EventTime       time.Time       `json:"-"`
	TransactionTime time.Time       `json:"-"`
	Bids            exchange.Levels `json:"bids"`
	Asks            exchange.Levels `json:"asks"`
	E               int64           `json:"E"`
	T               int64           `json:"T"`
}

// DecodeImage decodes the body of a REST depth request (GET /api/v3/depth
// on spot, /fapi/v1/depth on USDⓈ-M futures). An error body
// ({"code":-1121,"msg":"Invalid symbol."}) or one without lastUpdateId is an
// error wrapping [exchange.ErrFormat] that quotes Binance's message.
func DecodeImage(body []byte) (DepthImage, error) {
	var img DepthImage
	var probe struct {
		LastUpdateID *uint64 `json:"lastUpdateId"`
		Code         *int    `json:"code"`
		Msg          string  `json:"msg"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return img, wire.Wrap("binance: depth image", err)
	}
	if probe.Code != nil {
		return img, fmt.Errorf("%w: binance: depth request failed: code %d: %s", exchange.ErrFormat, *probe.Code, probe.Msg)
	}
	if probe.LastUpdateID == nil || *probe.LastUpdateID == 0 {
		return img, fmt.Errorf("%w: binance: depth image without a positive lastUpdateId", exchange.ErrFormat)
	}
	if err := json.Unmarshal(body, &img); err != nil {
		return img, wire.Wrap("binance: depth image", err)
	}
	if img.E != 0 {
		var err error
		if img.EventTime, err = millis("E", img.E); err != nil {
			return img, err
		}
	}
	if img.T != 0 {
		var err error
		if img.TransactionTime, err = millis("T", img.T); err != nil {
			return img, err
		}
	}
	return img, nil
}

// Market is a Binance market whose books this package decodes.
type Market uint8

// The markets.
const (
	Spot Market = iota + 1 // api.binance.com, /api/v3/depth
	USDM                   // fapi.binance.com, /fapi/v1/depth
)

// String returns "spot" or "usdm".
func (mk Market) String() string {
	switch mk {
	case Spot:
		return "spot"
	case USDM:
		return "usdm"
	}
	return fmt.Sprintf("Market(%d)", uint8(mk))
}

// ParseDepthURL tells from a REST request URL whether it is a depth image
// request, for which market and symbol: …/api/v3/depth?symbol=BTCUSDT is
// spot, …/fapi/v1/depth?symbol=BTCUSDT is USDⓈ-M futures. ok is false for
// any other URL.
func ParseDepthURL(raw string) (mk Market, symbol string, ok bool) {
	u, err := url.Parse(raw)
	if err != nil {
		return 0, "", false
	}
	switch strings.TrimSuffix(u.Path, "/") {
	case "/api/v3/depth":
		mk = Spot
	case "/fapi/v1/depth":
		mk = USDM
	default:
		return 0, "", false
	}
	symbol = strings.ToUpper(u.Query().Get("symbol"))
	if symbol == "" {
		return 0, "", false
	}
	return mk, symbol, true
}
