package replay_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/exchange/replay"
)

func TestCaptureReader(t *testing.T) {
	t.Parallel()
	in := strings.Join([]string{
		"# connected to wss://stream.binance.com:9443/ws/btcusdt@depth",
		`1700000000.25: {"e":"depthUpdate"}`,
		"",
		`https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=5 -> 1700000001: {"lastUpdateId":1}`,
		"connection closed: 1006",
		"1700000002.123456789123: pong\r",
		"notatime: x",
		"1700000003:", // no message
		`1700000004: [0,{"as":[]},"book-10","XBT/USD"]`,
	}, "\n")
	r := replay.NewCaptureReader(strings.NewReader(in))
	var got []replay.Line
	for {
		l, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		l.Body = bytes.Clone(l.Body)
		got = append(got, l)
	}
	want := []replay.Line{
		{Time: time.Unix(1700000000, 250e6), Body: []byte(`{"e":"depthUpdate"}`), Number: 2},
		{Time: time.Unix(1700000001, 0), URL: "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=5", Body: []byte(`{"lastUpdateId":1}`), Number: 4},
		{Time: time.Unix(1700000002, 123456789), Body: []byte(`pong`), Number: 6},
		{Time: time.Unix(1700000004, 0), Body: []byte(`[0,{"as":[]},"book-10","XBT/USD"]`), Number: 9},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Time.Equal(w.Time) || g.URL != w.URL || !bytes.Equal(g.Body, w.Body) || g.Number != w.Number {
			t.Errorf("line %d = {%v %q %s %d}, want {%v %q %s %d}", i, g.Time, g.URL, g.Body, g.Number, w.Time, w.URL, w.Body, w.Number)
		}
	}
	if s, long := r.Skipped(); s != 5 || long != 0 {
		t.Errorf("Skipped() = %d, %d; want 5, 0", s, long)
	}
}

func TestCaptureReaderSkipsOverlongLines(t *testing.T) {
	t.Parallel()
	long := "1700000000: " + strings.Repeat("x", replay.MaxLine)
	in := long + "\n1700000001: ok\n" + long // the last without a newline
	r := replay.NewCaptureReader(strings.NewReader(in))
	l, err := r.Next()
	if err != nil || string(l.Body) != "ok" || l.Number != 2 {
		t.Fatalf("Next() = %+v, %v; want the line ok", l, err)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next() at the end = %v, want EOF", err)
	}
	if s, n := r.Skipped(); s != 2 || n != 2 {
		t.Errorf("Skipped() = %d, %d; want 2, 2", s, n)
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		`1700000000.25: {"e":"depthUpdate"}`,
		`https://api.binance.com/api/v3/depth?symbol=BTCUSDT -> 1700000001: {}`,
		`note`, `1: x`, `a -> 1: b`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		l, ok := replay.ParseLine(line)
		if !ok {
			return
		}
		if len(bytes.TrimSpace(l.Body)) == 0 {
			t.Fatal("accepted a line without a message")
		}
		if !bytes.HasSuffix(line, l.Body) {
			t.Fatal("body is not the end of the line")
		}
		if l.Time.Before(time.Unix(0, 0)) {
			t.Fatalf("time %v before 1970", l.Time)
		}
	})
}
