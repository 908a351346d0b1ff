package binance_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/binance"
)

// Fixtures written from the documented forms of the diff depth stream, the
// book ticker stream and the REST depth image, spot and USDⓈ-M futures.
const (
	docSpotDepth    = `{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}`
	docFuturesDepth = `{"e":"depthUpdate","E":123456789,"T":123456788,"s":"BTCUSDT","U":157,"u":160,"pu":149,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}`
	docCombined     = `{"stream":"bnbbtc@depth@100ms","data":{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":161,"u":161,"b":[],"a":[["0.0026","0"]]}}`
	docSpotTicker   = `{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}`
	docFutTicker    = `{"e":"bookTicker","u":400900217,"E":1568014460893,"T":1568014460891,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}`
	docSpotImage    = `{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}`
	docFutImage     = `{"lastUpdateId":1027024,"E":1589436922972,"T":1589436922959,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}`
)

func TestDecodeDepth(t *testing.T) {
	t.Parallel()
	m, err := binance.Decode([]byte(docSpotDepth))
	if err != nil {
		t.Fatal(err)
	}
	d := m.Depth
	if m.Kind != binance.Depth || d.Symbol != "BNBBTC" || d.First != 157 || d.Last != 160 || d.HasPrev {
		t.Fatalf("spot: %+v", m)
	}
	if !d.EventTime.Equal(time.UnixMilli(1672515782136)) || !d.TransactionTime.IsZero() {
		t.Errorf("spot times: %v %v", d.EventTime, d.TransactionTime)
	}
	if len(d.Bids) != 1 || d.Bids[0].Price.String() != "0.0024" || d.Asks[0].Qty.String() != "100" {
		t.Errorf("spot levels: %v %v", d.Bids, d.Asks)
	}
	f, err := binance.Decode([]byte(docFuturesDepth))
	if err != nil {
		t.Fatal(err)
	}
	if f.Kind != binance.Depth || !f.Depth.HasPrev || f.Depth.Prev != 149 || f.Depth.TransactionTime.IsZero() {
		t.Fatalf("futures: %+v", f)
	}
	c, err := binance.Decode([]byte(docCombined))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != binance.Depth || c.Stream != "bnbbtc@depth@100ms" || c.Depth.First != 161 || len(c.Depth.Bids) != 0 || !c.Depth.Asks[0].Qty.IsZero() {
		t.Fatalf("combined: %+v", c)
	}
}

func TestDecodeTicker(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{docSpotTicker, docFutTicker} {
		m, err := binance.Decode([]byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		tk := m.Ticker
		if m.Kind != binance.Ticker || tk.Symbol != "BNBUSDT" || tk.UpdateID != 400900217 ||
			tk.Bid.Price.String() != "25.35190000" || tk.Bid.Qty.String() != "31.21000000" ||
			tk.Ask.Price.String() != "25.36520000" || tk.Ask.Qty.String() != "40.66000000" {
			t.Errorf("Decode(%s) = %+v", msg, m)
		}
	}
}

func TestDecodeImage(t *testing.T) {
	t.Parallel()
	img, err := binance.DecodeImage([]byte(docSpotImage))
	if err != nil {
		t.Fatal(err)
	}
	if img.LastUpdateID != 1027024 || !img.EventTime.IsZero() || len(img.Bids) != 1 || img.Asks[0].Price.String() != "4.00000200" {
		t.Errorf("spot image: %+v", img)
	}
	fut, err := binance.DecodeImage([]byte(docFutImage))
	if err != nil {
		t.Fatal(err)
	}
	if !fut.EventTime.Equal(time.UnixMilli(1589436922972)) {
		t.Errorf("futures image time %v", fut.EventTime)
	}
	for _, body := range []string{`{"code":-1121,"msg":"Invalid symbol."}`, `{"bids":[],"asks":[]}`, `[]`, `{"lastUpdateId":1,"bids":[["1"]],"asks":[]}`} {
		if _, err := binance.DecodeImage([]byte(body)); !errors.Is(err, exchange.ErrFormat) {
			t.Errorf("DecodeImage(%s) = %v, want ErrFormat", body, err)
		}
	}
}

func TestParseDepthURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]struct {
		mk  binance.Market
		sym string
		ok  bool
	}{
		"https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000":   {binance.Spot, "BTCUSDT", true},
		"https://fapi.binance.com/fapi/v1/depth?symbol=btcusdt&limit=1000": {binance.USDM, "BTCUSDT", true},
		"https://api.binance.com/api/v3/ticker?symbol=BTCUSDT":             {},
		"https://api.binance.com/api/v3/depth":                             {},
		"::":                                                               {},
	} {
		mk, sym, ok := binance.ParseDepthURL(raw)
		if mk != want.mk || sym != want.sym || ok != want.ok {
			t.Errorf("ParseDepthURL(%q) = %v %q %v, want %v %q %v", raw, mk, sym, ok, want.mk, want.sym, want.ok)
		}
	}
}

func TestDecodeOtherAndMalformed(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{`{"result":null,"id":1}`, `{"e":"trade","E":1,"s":"BNBBTC"}`} {
		if m, err := binance.Decode([]byte(msg)); err != nil || m.Kind != binance.Other {
			t.Errorf("Decode(%s) = %v, %v; want Other", msg, m.Kind, err)
		}
	}
	for _, msg := range []string{
		``, `[`, `[]`,
		`{"e":"depthUpdate","E":1,"s":"X","U":5,"u":4,"b":[],"a":[]}`,                       // U > u
		`{"e":"depthUpdate","E":1,"s":"X","U":0,"u":4,"b":[],"a":[]}`,                       // U = 0
		`{"e":"depthUpdate","E":1,"s":"X","u":4,"b":[],"a":[]}`,                             // no U
		`{"e":"depthUpdate","s":"X","U":1,"u":4,"b":[],"a":[]}`,                             // no E
		`{"e":"depthUpdate","E":1,"U":1,"u":4,"b":[],"a":[]}`,                               // no s
		`{"e":"depthUpdate","E":1,"s":"X","U":1,"u":4,"a":[]}`,                              // no b
		`{"e":"depthUpdate","E":1,"s":"X","U":1,"u":4,"pu":4,"b":[],"a":[]}`,                // pu ≥ u
		`{"e":"depthUpdate","E":1,"s":"X","U":1,"u":4,"b":[["1","-2"]],"a":[]}`,             // qty
		`{"e":"depthUpdate","E":1,"s":"X","U":1,"u":4,"b":[["1","2",[]]],"a":[]}`,           // old form
		`{"e":"depthUpdate","E":-1,"s":"X","U":1,"u":4,"b":[],"a":[]}`,                      // E
		`{"e":"depthUpdate","E":"1","s":"X","U":1,"u":4,"b":[],"a":[]}`,                     // E a string
		`{"e":"bookTicker","s":"X","b":"1","B":"1","a":"2","A":"1"}`,                        // no u
		`{"e":"bookTicker","u":1,"s":"X","b":1,"B":"1","a":"2","A":"1"}`,                    // number
		`{"stream":"x","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":4,"b":[],"a":{}}}`, // a object
	} {
		_, err := binance.Decode([]byte(msg))
		if err == nil {
			t.Errorf("Decode(%s) succeeded", msg)
			continue
		}
		if !errors.Is(err, exchange.ErrFormat) && !errors.Is(err, exchange.ErrDecimal) {
			t.Errorf("Decode(%s) = %v, want ErrFormat or ErrDecimal", msg, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{docSpotDepth, docFuturesDepth, docCombined, docSpotTicker, docFutTicker} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		m, err := binance.Decode(msg)
		if err != nil {
			if !errors.Is(err, exchange.ErrFormat) && !errors.Is(err, exchange.ErrDecimal) {
				t.Fatalf("error %v wraps neither ErrFormat nor ErrDecimal", err)
			}
			return
		}
		if m.Kind == binance.Depth && (m.Depth.First == 0 || m.Depth.First > m.Depth.Last || m.Depth.Symbol == "") {
			t.Fatalf("accepted a depthUpdate with bad IDs: %+v", m.Depth)
		}
	})
}

func FuzzDecodeImage(f *testing.F) {
	for _, s := range []string{docSpotImage, docFutImage, `{"code":-1121,"msg":"Invalid symbol."}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		img, err := binance.DecodeImage(body)
		if err != nil {
			if !errors.Is(err, exchange.ErrFormat) && !errors.Is(err, exchange.ErrDecimal) {
				t.Fatalf("error %v wraps neither ErrFormat nor ErrDecimal", err)
			}
			return
		}
		if img.LastUpdateID == 0 {
			t.Fatal("accepted an image without lastUpdateId")
		}
	})
}
