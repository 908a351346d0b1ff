package snapshotapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// record is one element of a POST .../updates body: an update, a
// heartbeat or an image.
type record struct {
	Type       string          `json:"type"` // "update" (the default), "heartbeat" or "image"
	Source     string          `json:"source"`
	Seq        uint64          `json:"seq"`
	Time       eventTime       `json:"time"`
	Key        string          `json:"key"`
	Value      json.RawMessage `json:"value"`
	Delete     bool            `json:"delete"`
	EndOfEvent bool            `json:"end_of_event"`
	Epoch      uint64          `json:"epoch"`
	Untimed    bool            `json:"untimed"`
	Entries    []entry         `json:"entries"`
}

// entry is one key and value of an image record.
type entry struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// eventTime is an event time in JSON: an RFC 3339 string with up to
// nanoseconds, or an integer of Unix nanoseconds.
type eventTime struct{ time.Time }

func (t *eventTime) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("time %q: want RFC 3339 (\"2026-01-02T09:30:00.005Z\") or Unix nanoseconds", s)
		}
		if v.Before(time.Unix(0, 1)) || v.After(time.Unix(0, math.MaxInt64)) {
			return fmt.Errorf("time %q: want a time from 1970 to 2262 (Unix nanoseconds above 0)", s)
		}
		t.Time = v.UTC()
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("time %s: want RFC 3339 (\"2026-01-02T09:30:00.005Z\") or Unix nanoseconds, above 0", b)
	}
	t.Time = time.Unix(0, n).UTC()
	return nil
}

const recordFields = "type, source, seq, time, key, value, delete, end_of_event (updates); epoch (heartbeats); untimed, entries [{key, value}] (images)"

// decodeRecords reads a JSON array of records, or records as JSON lines
// (one object after another, whitespace between), at most max of them.
// Every record is checked; the error names the first bad one by its index
// and says what is accepted.
func decodeRecords(r io.Reader, max int) ([]record, error) {
	br := bufio.NewReader(r)
	first, err := firstByte(br)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(br)
	dec.DisallowUnknownFields()
	var recs []record
	if first == '[' {
		if _, err := dec.Token(); err != nil {
			return nil, decodeErr(0, err)
		}
		for dec.More() {
			if len(recs) == max {
				return nil, tooMany(max)
			}
			var rec record
			if err := dec.Decode(&rec); err != nil {
				return nil, decodeErr(len(recs), err)
			}
			recs = append(recs, rec)
		}
		if _, err := dec.Token(); err != nil {
			return nil, decodeErr(len(recs), err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, errors.New("trailing data after the JSON array")
		}
	} else {
		for {
			var rec record
			err := dec.Decode(&rec)
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, decodeErr(len(recs), err)
			}
			if len(recs) == max {
				return nil, tooMany(max)
			}
			recs = append(recs, rec)
		}
	}
	if len(recs) == 0 {
		return nil, errors.New("no records: send a JSON array or JSON lines of {\"source\",\"seq\",\"time\",\"key\",\"value\"}")
	}
	for i := range recs {
		if err := recs[i].check(); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
	}
	return recs, nil
}

// errTooMany marks a body with more records than allowed (a 413).
var errTooMany = errors.New("too many records")

func tooMany(max int) error {
	return fmt.Errorf("%w: at most %d records a request; split the body", errTooMany, max)
}

func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err == io.EOF {
			return 0, errors.New("empty body: send a JSON array or JSON lines of {\"source\",\"seq\",\"time\",\"key\",\"value\"}")
		}
		if err != nil {
			return 0, err
		}
		if !bytes.ContainsRune([]byte(" \t\r\n"), rune(b)) {
			return b, br.UnreadByte()
		}
	}
}

func decodeErr(i int, err error) error {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		return fmt.Errorf("record %d: field %q: got a JSON %s, want a %s", i, ute.Field, ute.Value, ute.Type)
	case errors.As(err, &se):
		return fmt.Errorf("record %d: not JSON: %v at byte %d", i, se, se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return fmt.Errorf("record %d: the body ends inside it", i)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return fmt.Errorf("record %d: %s: accepted fields are %s", i, strings.TrimPrefix(err.Error(), "json: "), recordFields)
	}
	return fmt.Errorf("record %d: %w", i, err)
}

// check says what is wrong with a decoded record.
func (r *record) check() error {
	if r.Source == "" {
		return errors.New("no source: every record names its source")
	}
	switch r.Type {
	case "", "update":
		if r.Seq == 0 {
			return errors.New("seq is missing or 0: an update's seq counts 1, 2, 3, ... per source")
		}
		if r.Time.IsZero() {
			return errors.New("time is missing: give the event time (RFC 3339 or Unix nanoseconds)")
		}
		if r.Key == "" {
			return errors.New("key is missing or empty")
		}
		if !r.Delete && len(r.Value) == 0 {
			return errors.New("value is missing: give a JSON value, or \"delete\": true")
		}
		if r.Epoch != 0 || r.Untimed || r.Entries != nil {
			return errors.New("epoch, untimed and entries belong to heartbeats and images, not updates")
		}
	case "heartbeat":
		if r.Time.IsZero() {
			return errors.New("time is missing: a heartbeat says every update up to this event time was sent")
		}
		if r.Key != "" || r.Value != nil || r.Delete || r.EndOfEvent || r.Untimed || r.Entries != nil {
			return errors.New("a heartbeat takes source, seq (the last update sent), time and epoch only")
		}
	case "image":
		if r.Seq == 0 {
			return errors.New("seq is missing or 0: an image is current to a sequence number, 1 or more")
		}
		if r.Time.IsZero() != r.Untimed {
			return errors.New("give an image either a time or \"untimed\": true")
		}
		if r.Key != "" || r.Value != nil || r.Delete || r.EndOfEvent || r.Epoch != 0 {
			return errors.New("an image takes source, seq, time (or untimed) and entries only")
		}
		for j, e := range r.Entries {
			if e.Key == "" || len(e.Value) == 0 {
				return fmt.Errorf("entries[%d]: want a non-empty key and a JSON value", j)
			}
		}
	default:
		return fmt.Errorf("type %q: want \"update\" (the default), \"heartbeat\" or \"image\"", r.Type)
	}
	return nil
}
