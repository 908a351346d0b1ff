package demo

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/marketsim"
	"github.com/gather-go/gather/snapshot"
	"github.com/gather-go/gather/snapshot/natsfeed"
)

// On a terminal the block is redrawn in place: the second draw moves the
// cursor up exactly the lines of the first and clears below, and every line
// fits maxWidth.
func TestViewRedrawsInPlace(t *testing.T) {
	t.Parallel()
	base := time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)
	c, err := snapshot.New(&snapshot.Config[string, marketsim.Quote]{
		Sources: []snapshot.Source{{Name: "XNAS"}, {Name: "BATS"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Apply(snapshot.Update[string, marketsim.Quote]{Source: "XNAS", Seq: 1, Time: base, Key: "AAPL", Value: marketsim.Quote{Bid: 100, Ask: 102}})
	_ = c.Heartbeat(snapshot.Heartbeat{Source: "XNAS", Seq: 1, Time: base.Add(time.Second)})
	cut, _ := c.Cut(base.Add(time.Millisecond)) // BATS never heard: held back
	r := &Round{Cut: cut, Quotes: []NBBO{{Symbol: "AAPL", Quoted: true, Bid: 100, BidVenue: "XNAS", Ask: 102, AskVenue: "XNAS", Spread: 2, MidX2: 202}}}

	var buf bytes.Buffer
	v := newView(&buf, true, options{show: 3}, []marketsim.Venue{{Name: "XNAS"}, {Name: "BATS"}}, []string{"AAPL"})
	var lat samples
	lat.add(3 * time.Millisecond)
	sum := &summary{cuts: 1}
	v.round(r, &lat, sum, natsfeed.Stats{}, nil)
	first := buf.String()
	n := strings.Count(first, "\n")
	if !strings.Contains(first, "held back by BATS never heard") || !strings.Contains(first, "AAPL") {
		t.Errorf("first draw lacks the held-back reason or the quote:\n%s", first)
	}
	buf.Reset()
	v.lastDraw = time.Time{}
	v.round(r, &lat, sum, natsfeed.Stats{}, nil)
	if want := fmt.Sprintf("\x1b[%dF\x1b[J", n); !strings.HasPrefix(buf.String(), want) {
		t.Errorf("second draw starts %q, want %q (up %d lines, clear below)", buf.String()[:min(12, buf.Len())], want, n)
	}
	for _, l := range strings.Split(first, "\n") {
		if len(l) > maxWidth {
			t.Errorf("line of %d bytes, wider than %d: %q", len(l), maxWidth, l)
		}
	}
}
