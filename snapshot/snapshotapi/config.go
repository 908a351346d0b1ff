package snapshotapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Spec describes one named collector, as the JSON of a --snapshots file:
//
//	[{"name": "quotes", "interval": "1s", "horizon": "1m",
//	  "sources": [{"name": "A"}, {"name": "B", "optional": true}],
//	  "nats": {"prefix": "md"}}]
//
// Keys are strings and values raw JSON. The zero value of every field but
// Name and Sources is its default.
type Spec struct {
	// Name names the collector in the routes: /v1/snapshots/{name}.
	// Letters, digits, '.', '_' and '-', at most 64.
	Name string `json:"name"`
	// Sources are the collector's sources, at least one: required unless
	// Optional.
	Sources []SourceSpec `json:"sources"`
	// Interval cuts at every multiple of it as soon as that cut is
	// complete (Latest moves in these steps), and spaces the cuts of the
	// event stream. Default 1s.
	Interval Duration `json:"interval,omitempty"`
	// Grace is how long past its time a cut of the event stream waits to
	// be complete before it is sent incomplete. Default: Interval.
	Grace Duration `json:"grace,omitempty"`
	// Horizon keeps cuts this far behind the newest for reads at a past
	// time. Default one minute.
	Horizon Duration `json:"horizon,omitempty"`
	// SilentAfter reports a source silent once nothing has come from it
	// for this long. Default one second.
	SilentAfter Duration `json:"silent_after,omitempty"`
	// NATS, when set, feeds the collector from NATS subjects (package
	// natsfeed's protocol) instead of POST requests.
	NATS *NATSSpec `json:"nats,omitempty"`
}

// SourceSpec is one source of a [Spec].
type SourceSpec struct {
	Name     string `json:"name"`
	Optional bool   `json:"optional,omitempty"`
}

// NATSSpec says where a collector's sources publish.
type NATSSpec struct {
	// Prefix is the subject prefix. Default natsfeed.DefaultPrefix.
	Prefix string `json:"prefix,omitempty"`
	// NoImage starts every source from its first update instead of an
	// image from its publisher.
	NoImage bool `json:"no_image,omitempty"`
}

// Duration is a time.Duration that reads and writes JSON as a string such
// as "250ms" or "1m".
type Duration time.Duration

// UnmarshalJSON reads a duration string ("250ms", "2s", "1m").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s: want a string such as \"250ms\" or \"1m\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q: want a string such as \"250ms\" or \"1m\", 0 or more", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// sourceRE is a NATS subject token and a safe name in a URL.
var sourceRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ParseSpecs reads a JSON array of [Spec] strictly (unknown fields are
// errors) and checks it; the error joins every problem found.
func ParseSpecs(b []byte) ([]Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var specs []Spec
	if err := dec.Decode(&specs); err != nil {
		return nil, fmt.Errorf("snapshotapi: specs: %w (want a JSON array of {\"name\", \"sources\": [{\"name\", \"optional\"}], \"interval\", \"grace\", \"horizon\", \"silent_after\", \"nats\": {\"prefix\", \"no_image\"}})", err)
	}
	if dec.More() {
		return nil, errors.New("snapshotapi: specs: trailing data after the JSON array")
	}
	return specs, checkSpecs(specs)
}

func checkSpecs(specs []Spec) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("snapshotapi: "+format, args...)) }
	names := map[string]bool{}
	for i, s := range specs {
		switch {
		case !nameRE.MatchString(s.Name):
			bad("collector %d: name %q: want 1 to 64 letters, digits, '.', '_' or '-'", i, s.Name)
		case names[s.Name]:
			bad("collector %q listed twice", s.Name)
		}
		names[s.Name] = true
		if len(s.Sources) == 0 {
			bad("collector %q has no sources: list at least one", s.Name)
		}
		srcs := map[string]bool{}
		for j, src := range s.Sources {
			switch {
			case !sourceRE.MatchString(src.Name):
				bad("collector %q: source %d: name %q: want 1 to 64 letters, digits, '_' or '-'", s.Name, j, src.Name)
			case srcs[src.Name]:
				bad("collector %q: source %q listed twice", s.Name, src.Name)
			}
			srcs[src.Name] = true
		}
		if s.Interval != 0 && time.Duration(s.Interval) < time.Millisecond {
			bad("collector %q: interval %v: want 1ms or more", s.Name, time.Duration(s.Interval))
		}
	}
	if len(specs) == 0 {
		bad("no collectors: list at least one")
	}
	return errors.Join(errs...)
}
