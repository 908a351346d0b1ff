package replay

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/snapshot"
)

// cut takes the cut at t and prints it.
func (r *run) cut(t time.Time) {
	cut, err := r.c.Cut(t)
	if err != nil {
		fmt.Fprintf(r.stderr, "cut at %s: %v\n", t.Format(time.RFC3339Nano), err)
		return
	}
	r.cuts++
	state := "incomplete"
	if cut.Complete() {
		r.complete++
		state = "complete"
	}
	if r.json {
		r.printJSON(t, cut)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cut %s %s\n", t.UTC().Format(time.RFC3339Nano), state)
	for _, src := range r.sources {
		fmt.Fprintf(&b, "  %-24s bid %-28s ask %-28s", src, side(cut, src, exchange.BidSide), side(cut, src, exchange.AskSide))
		if st, ok := cut.Status(src); ok {
			b.WriteString(st.State.String())
			if len(st.Missing) > 0 {
				fmt.Fprintf(&b, " (missing %d..%d", st.Missing[0].First, st.Missing[0].Last)
				if st.MissingCount > st.Missing[0].Last-st.Missing[0].First+1 {
					fmt.Fprintf(&b, " and more, %d IDs in all", st.MissingCount)
				}
				b.WriteString(")")
			}
		}
		b.WriteString("\n")
	}
	io.WriteString(r.stdout, b.String())
}

func side(cut *snapshot.Cut[exchange.Key, exchange.Level], src string, s int) string {
	_, l, ok := cut.First(src, s)
	if !ok {
		return "-"
	}
	return l.Price.String() + " x " + l.Qty.String()
}

// cutJSON is a cut as --json prints it, one line per cut.
type cutJSON struct {
	Time     time.Time  `json:"time"`
	Complete bool       `json:"complete"`
	Books    []bookJSON `json:"books"`
}

type bookJSON struct {
	Source string          `json:"source"` // "venue:symbol"
	State  string          `json:"state"`
	Bid    *exchange.Level `json:"bid,omitempty"`
	Ask    *exchange.Level `json:"ask,omitempty"`
	// Missing is the first missing range of a gapped book.
	Missing *rangeJSON `json:"missing,omitempty"`
}

type rangeJSON struct {
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
}

func (r *run) printJSON(t time.Time, cut *snapshot.Cut[exchange.Key, exchange.Level]) {
	out := cutJSON{Time: t.UTC(), Complete: cut.Complete(), Books: make([]bookJSON, 0, len(r.sources))}
	for _, src := range r.sources {
		b := bookJSON{Source: src}
		if _, l, ok := cut.First(src, exchange.BidSide); ok {
			b.Bid = &l
		}
		if _, l, ok := cut.First(src, exchange.AskSide); ok {
			b.Ask = &l
		}
		if st, ok := cut.Status(src); ok {
			b.State = st.State.String()
			if len(st.Missing) > 0 {
				b.Missing = &rangeJSON{First: st.Missing[0].First, Last: st.Missing[0].Last}
			}
		}
		out.Books = append(out.Books, b)
	}
	line, err := json.Marshal(out)
	if err != nil { // cannot happen: every field marshals
		fmt.Fprintf(r.stderr, "cut at %s: %v\n", t.Format(time.RFC3339Nano), err)
		return
	}
	r.stdout.Write(append(line, '\n'))
}
