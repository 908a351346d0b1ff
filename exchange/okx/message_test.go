package okx_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/okx"
)

// Fixtures written from the documented push forms of the books and bbo-tbt
// channels.
const (
	docSnapshot = `{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["8476.98","415","0","13"],["8477","7","0","2"]],"bids":[["8476.97","256","0","12"],["8475.55","101","0","1"]],"ts":"1597026383085","checksum":-1200119424,"prevSeqId":-1,"seqId":123456}]}`
	docUpdate   = `{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["8476.98","0","0","0"]],"bids":[["8476.97","300","0","13"]],"ts":"1597026383185","checksum":0,"prevSeqId":123456,"seqId":123460}]}`
	docQuiet    = `{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1597026384085","checksum":0,"prevSeqId":123460,"seqId":123460}]}`
	docBBO      = `{"arg":{"channel":"bbo-tbt","instId":"BTC-USDT"},"data":[{"asks":[["8477","7","0","2"]],"bids":[["8476.97","300","0","13"]],"ts":"1597026383185","seqId":123460}]}`
)

func TestDecodeBooks(t *testing.T) {
	t.Parallel()
	m, err := okx.Decode([]byte(docSnapshot))
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != okx.Snapshot || m.InstID != "BTC-USDT" || m.Channel != "books" || len(m.Books) != 1 {
		t.Fatalf("decoded %+v", m)
	}
	bk := m.Books[0]
	if len(bk.Asks) != 2 || bk.Asks[1].Price.String() != "8477" || bk.Bids[0].Qty.String() != "256" {
		t.Errorf("levels: %v %v", bk.Asks, bk.Bids)
	}
	if !bk.HasChecksum || bk.Checksum != -1200119424 || bk.SeqID != 123456 || bk.PrevSeqID != -1 {
		t.Errorf("book fields: %+v", bk)
	}
	if !bk.Time.Equal(time.UnixMilli(1597026383085)) {
		t.Errorf("time %v", bk.Time)
	}

	u, err := okx.Decode([]byte(docUpdate))
	if err != nil {
		t.Fatal(err)
	}
	if u.Kind != okx.Update || u.Books[0].HasChecksum || u.Books[0].PrevSeqID != 123456 || !u.Books[0].Asks[0].Qty.IsZero() {
		t.Errorf("update: %+v", u)
	}
	q, err := okx.Decode([]byte(docQuiet))
	if err != nil {
		t.Fatal(err)
	}
	if q.Kind != okx.Update || len(q.Books[0].Asks)+len(q.Books[0].Bids) != 0 || q.Books[0].SeqID != q.Books[0].PrevSeqID {
		t.Errorf("quiet update: %+v", q)
	}
	b, err := okx.Decode([]byte(docBBO))
	if err != nil {
		t.Fatal(err)
	}
	if b.Kind != okx.BBO || b.Books[0].SeqID != 123460 || b.Books[0].HasChecksum {
		t.Errorf("bbo: %+v", b)
	}
}

func TestDecodeOther(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{
		`pong`,
		`{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}`,
		`{"event":"error","code":"60012","msg":"Invalid request","connId":"a4d3ae55"}`,
		`{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"last":"1"}]}`,
	} {
		m, err := okx.Decode([]byte(msg))
		if err != nil || m.Kind != okx.Other {
			t.Errorf("Decode(%s) = %v, %v; want Other", msg, m.Kind, err)
		}
	}
}

func TestDecodeRefusesMalformedBooks(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{
		``, `{`, `[]`,
		`{"arg":{"channel":"books"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","seqId":1,"prevSeqId":0}]}`,                       // no instId
		`{"arg":{"channel":"books","instId":"X"},"action":"partial","data":[{"asks":[],"bids":[],"ts":"1","seqId":1}]}`,                       // action
		`{"arg":{"channel":"books","instId":"X"},"action":"update","data":[]}`,                                                                // empty data
		`{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["x","1"]],"bids":[],"ts":"1","seqId":2,"prevSeqId":1}]}`, // price
		`{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["1"]],"bids":[],"ts":"1","seqId":2,"prevSeqId":1}]}`,     // one field
		`{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"x","seqId":2,"prevSeqId":1}]}`,          // ts
		`{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","seqId":2,"prevSeqId":-1}]}`,         // prev
		`{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","seqId":2,"checksum":4294967295}]}`,  // checksum range
		`{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":{},"bids":[],"ts":"1","seqId":2,"prevSeqId":1}]}`,          // asks object
		`{"arg":{"channel":"books","instId":"X"},"action":"snapshot","data":[{"asks":[],"bids":[],"ts":"1","seqId":-5,"prevSeqId":-1}]}`,      // seq
	} {
		_, err := okx.Decode([]byte(msg))
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
	for _, s := range []string{docSnapshot, docUpdate, docQuiet, docBBO, `pong`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		m, err := okx.Decode(msg)
		if err != nil {
			if !errors.Is(err, exchange.ErrFormat) && !errors.Is(err, exchange.ErrDecimal) {
				t.Fatalf("error %v wraps neither ErrFormat nor ErrDecimal", err)
			}
			return
		}
		if m.Kind != okx.Other && (len(m.Books) == 0 || m.InstID == "") {
			t.Fatalf("book push without data or instrument: %+v", m)
		}
		for _, bk := range m.Books {
			okx.Checksum(bk.Bids, bk.Asks)
		}
	})
}
