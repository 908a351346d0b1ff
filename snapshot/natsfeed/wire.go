package natsfeed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header names of the wire protocol (see the package doc). Header names are
// case-sensitive in NATS.
const (
	HeaderSeq    = "Gather-Seq"          // sequence number, decimal
	HeaderTime   = "Gather-Time"         // event time, Unix nanoseconds, decimal
	HeaderDelete = "Gather-Delete"       // "1": the update deletes its key
	HeaderEnd    = "Gather-End-Of-Event" // "1": the last update of an exchange event
	HeaderEpoch  = "Gather-Epoch"        // a heartbeat's barrier epoch, decimal
	HeaderFirst  = "Gather-First"        // a resend request's first sequence number
	HeaderLast   = "Gather-Last"         // a resend request's last sequence number
	HeaderCount  = "Gather-Count"        // a resend reply: updates sent again
	HeaderError  = "Gather-Error"        // a reply's refusal, in words
	HeaderResent = "Gather-Resent"       // "1": an update sent again on request
)

// DefaultPrefix is the subject prefix when none is configured.
const DefaultPrefix = "gather.feed"

// UpdateSubject is the subject of source's updates of key:
// "<prefix>.q.<source>.u.<key>". A key may hold dots (its tokens follow).
func UpdateSubject(prefix, source, key string) string {
	return prefix + ".q." + source + ".u." + key
}

// HeartbeatSubject is the subject of source's heartbeats:
// "<prefix>.q.<source>.hb". Updates and heartbeats share the wildcard
// "<prefix>.q.<source>.>", so that one subscription receives them in the
// order they were published.
func HeartbeatSubject(prefix, source string) string { return prefix + ".q." + source + ".hb" }

// sourceSubject is the wildcard of a source's updates and heartbeats.
func sourceSubject(prefix, source string) string { return prefix + ".q." + source + ".>" }

// ResendSubject is where source's publisher takes resend requests:
// "<prefix>.resend.<source>".
func ResendSubject(prefix, source string) string { return prefix + ".resend." + source }

// ImageSubject is where source's publisher takes image requests:
// "<prefix>.image.<source>".
func ImageSubject(prefix, source string) string { return prefix + ".image." + source }

// checkToken says what is wrong with a subject token, if anything.
func checkToken(what, s string) error {
	if s == "" {
		return fmt.Errorf("natsfeed: %s is empty", what)
	}
	for _, r := range s {
		switch {
		case r == '.':
			return fmt.Errorf("natsfeed: %s %q holds a '.': it must be one subject token", what, s)
		case r == '*' || r == '>':
			return fmt.Errorf("natsfeed: %s %q holds a wildcard (%q): subject tokens cannot", what, s, r)
		case r <= ' ' || r == 0x7f:
			return fmt.Errorf("natsfeed: %s %q holds a space or control character: subject tokens cannot", what, s)
		}
	}
	return nil
}

// checkDotted checks a prefix or key: one or more tokens joined by dots.
func checkDotted(what, s string) error {
	if s == "" {
		return fmt.Errorf("natsfeed: %s is empty", what)
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return fmt.Errorf("natsfeed: %s %q has an empty token (a leading, trailing or doubled '.')", what, s)
		}
		if err := checkToken(what+" token", tok); err != nil {
			return fmt.Errorf("%w (in %s %q)", err, what, s)
		}
	}
	return nil
}

func fmtUint(n uint64) string { return strconv.FormatUint(n, 10) }

func fmtTime(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

// parseSeq reads a sequence-number header; zero is accepted only if zeroOK.
func parseSeq(name, v string, zeroOK bool) (uint64, error) {
	if v == "" {
		return 0, fmt.Errorf("natsfeed: header %s is missing", name)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("natsfeed: header %s is %q: want a decimal number", name, v)
	}
	if n == 0 && !zeroOK {
		return 0, fmt.Errorf("natsfeed: header %s is 0: sequence numbers start at 1", name)
	}
	return n, nil
}

// parseTime reads an event-time header: Unix nanoseconds, not zero.
func parseTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, fmt.Errorf("natsfeed: header %s is missing", HeaderTime)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}, fmt.Errorf("natsfeed: header %s is %q: want Unix nanoseconds, not zero", HeaderTime, v)
	}
	return time.Unix(0, n), nil
}

// Image bodies are a run of entries, each the key's length (uvarint), the key,
// the value's length (uvarint) and the value as the publisher encoded it.

func appendEntry(dst []byte, key string, val []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	dst = binary.AppendUvarint(dst, uint64(len(val)))
	return append(dst, val...)
}

var errImage = errors.New("natsfeed: malformed image body")

// rawEntry is one decoded image entry; val aliases the body.
type rawEntry struct {
	key string
	val []byte
}

// decodeImage splits an image body into its entries. It never allocates more
// than the body's size calls for.
func decodeImage(body []byte) ([]rawEntry, error) {
	var out []rawEntry
	for i := 0; len(body) > 0; i++ {
		k, n := binary.Uvarint(body)
		if n <= 0 || k > uint64(len(body)-n) {
			return nil, fmt.Errorf("%w: entry %d: key length does not fit the %d bytes left", errImage, i, len(body))
		}
		body = body[n:]
		key := string(body[:k])
		body = body[k:]
		v, n := binary.Uvarint(body)
		if n <= 0 || v > uint64(len(body)-n) {
			return nil, fmt.Errorf("%w: entry %d (key %q): value length does not fit the %d bytes left", errImage, i, key, len(body))
		}
		body = body[n:]
		out = append(out, rawEntry{key: key, val: body[:v:v]})
		body = body[v:]
	}
	return out, nil
}
