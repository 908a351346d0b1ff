package replay

import (
	"bytes"
	"encoding/json"
	"io"
	"os"

	"github.com/gather-go/gather/exchange/binance"
	"github.com/gather-go/gather/exchange/kraken"
	"github.com/gather-go/gather/exchange/okx"
	"github.com/gather-go/gather/snapshot"
)

// venue is the venue a capture line belongs to.
type venue uint8

const (
	unknown venue = iota
	venueBinance
	venueKraken
	venueOKX
)

// classify tells a capture line's venue from its URL or its message's
// shape: Kraken v1 channel messages are JSON arrays; OKX messages carry
// "arg" (or are "pong"); Binance messages carry "e", "u" or "stream", and
// its REST images are recognized by their URL. Kraken's events ("event"
// without "arg") are Kraken's.
func classify(l Line) venue {
	if l.URL != "" {
		if _, _, ok := binance.ParseDepthURL(l.URL); ok {
			return venueBinance
		}
		return unknown
	}
	b := bytes.TrimSpace(l.Body)
	switch {
	case len(b) == 0:
		return unknown
	case b[0] == '[':
		return venueKraken
	case string(b) == "pong":
		return venueOKX
	case b[0] != '{':
		return unknown
	}
	var probe struct {
		Arg    json.RawMessage `json:"arg"`
		Event  json.RawMessage `json:"event"`
		E      json.RawMessage `json:"e"`
		U      json.RawMessage `json:"u"`
		Stream json.RawMessage `json:"stream"`
	}
	if json.Unmarshal(b, &probe) != nil {
		return unknown
	}
	switch {
	case probe.Arg != nil:
		return venueOKX
	case probe.Event != nil:
		return venueKraken
	case probe.E != nil || probe.U != nil || probe.Stream != nil:
		return venueBinance
	}
	return unknown
}

// sourcesOf returns the book a capture line feeds, if it is a book message
// or image ("" otherwise): the first pass over the captures finds every
// source, so that the collector knows them all, each waiting for its image.
func sourcesOf(v venue, l Line) (snapshot.Source, bool) {
	switch v {
	case venueBinance:
		if l.URL != "" {
			mk, sym, _ := binance.ParseDepthURL(l.URL)
			return binance.Source(mk, sym), true
		}
		m, err := binance.Decode(l.Body)
		if err != nil || m.Kind != binance.Depth {
			return snapshot.Source{}, false
		}
		mk := binance.Spot
		if m.Depth.HasPrev {
			mk = binance.USDM
		}
		return binance.Source(mk, m.Depth.Symbol), true
	case venueKraken:
		m, err := kraken.Decode(l.Body)
		if err != nil || (m.Kind != kraken.Snapshot && m.Kind != kraken.Update) {
			return snapshot.Source{}, false
		}
		return kraken.Source(m.Pair), true
	case venueOKX:
		m, err := okx.Decode(l.Body)
		if err != nil || (m.Kind != okx.Snapshot && m.Kind != okx.Update) {
			return snapshot.Source{}, false
		}
		return okx.Source(m.InstID), true
	}
	return snapshot.Source{}, false
}

// discover reads the captures once and returns the sources they feed, in
// the order first met.
func discover(files []string) ([]snapshot.Source, error) {
	var out []snapshot.Source
	seen := make(map[string]bool)
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		r := NewCaptureReader(f)
		for {
			l, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return nil, err
			}
			if s, ok := sourcesOf(classify(l), l); ok && !seen[s.Name] {
				seen[s.Name] = true
				out = append(out, s)
			}
		}
		f.Close()
	}
	return out, nil
}
