package natsbroker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/gather-go/gather/queue"
)

// The wire formats. A task message's body is an envelope: a three-byte
// magic and version, then the fields its tasks share (strings and bytes
// length prefixed, integers as varints, times as appendTime writes them;
// in version 4, after the enqueue time, the headers: their count, then
// each key and value, keys in increasing order), then the attempts its tasks made before this message (tasks moved out of
// another message keep theirs), when they are due, the
// index of the first task and how many consecutive tasks the message
// carries (a pack, see Config.PackSize), then their payloads, each length
// prefixed. A results message carries one or more outcomes of one batch,
// or the batch's cancel marker. Binary and hand-written rather than JSON:
// about 10x cheaper to encode and decode, and the decoders are fuzzed
// (FuzzDecodeEnvelope, FuzzDecodeResults).
const (
	envMagic0, envMagic1, envVersion = 'G', 'Q', 3
	// envVersionHeaders is the envelope of tasks with headers. Tasks
	// without keep version 3, so a broker of an earlier release reads
	// every message of one that sends no headers.
	envVersionHeaders                = 4
	resMagic0, resMagic1, resVersion = 'G', 'R', 1

	resOutcomes byte = 0
	resCancel   byte = 1

	outOK   byte = 0
	outFail byte = 1
)

// hdrTask is the header naming the first task a message carries
// ("<batch>/<index>") and hdrCount how many it carries (absent: one), so that
// a message whose body does not decode can still be reported to its batch.
const (
	hdrTask  = "Gather-Task"
	hdrCount = "Gather-Count"
)

// maxPack bounds the tasks of one message.
const maxPack = 1024

var errShort = errors.New("truncated")

// appendTime appends t as the uvarint 0 for the zero time, else the
// uvarint of its nanoseconds within the second plus one, then the varint of
// its Unix seconds: every time.Time keeps its instant, where Unix
// nanoseconds wrapped outside the years 1678 to 2262 (a deadline in the year
// 3000 read as one long past) and made the Unix epoch read as the zero
// time, "none". Five bytes and five for a time of this century, where the
// nanoseconds took nine.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(t.Nanosecond())+1)
	return binary.AppendVarint(b, t.Unix())
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendEnvelope appends the envelope of a message carrying the tasks whose
// payloads are given, the first of them task m.Index; m gives the fields they
// share (its Payload and Attempt are not used). attempts is how many
// attempts they made before, due when they may run.
func appendEnvelope(b []byte, m *queue.Message, attempts int, due time.Time, payloads [][]byte) []byte {
	v := byte(envVersion)
	if len(m.Headers) > 0 {
		v = envVersionHeaders
	}
	b = append(b, envMagic0, envMagic1, v)
	b = appendString(b, m.BatchID)
	b = appendString(b, m.Queue)
	b = appendString(b, m.Kind)
	b = binary.AppendUvarint(b, uint64(m.Priority))
	b = binary.AppendUvarint(b, uint64(m.MaxAttempts))
	b = binary.AppendVarint(b, int64(m.Timeout))
	b = appendTime(b, m.Deadline)
	b = appendTime(b, m.RunAt)
	b = binary.AppendVarint(b, int64(m.BackoffMin))
	b = binary.AppendVarint(b, int64(m.BackoffMax))
	b = appendTime(b, m.EnqueuedAt)
	if v == envVersionHeaders {
		b = appendHeaders(b, m.Headers)
	}
	b = binary.AppendUvarint(b, uint64(attempts))
	b = appendTime(b, due)
	b = binary.AppendUvarint(b, uint64(m.Index))
	b = binary.AppendUvarint(b, uint64(len(payloads)))
	for _, p := range payloads {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// appendHeaders appends the count of h, then each key and value, keys in
// increasing order: one map, one encoding.
func appendHeaders(b []byte, h map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(h)))
	for _, k := range slices.Sorted(maps.Keys(h)) {
		b = appendString(b, k)
		b = appendString(b, h[k])
	}
	return b
}

// headersLen bounds what appendHeaders appends for h.
func headersLen(h map[string]string) int {
	n := binary.MaxVarintLen64
	for k, v := range h {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	return n
}

// headers reads what appendHeaders wrote: nil for none, and an error for
// more than queue.MaxHeaders, an empty key or keys out of order.
func (r *reader) headers() map[string]string {
	n := r.int("header count", queue.MaxHeaders)
	if n == 0 || r.err != nil {
		if r.err == nil {
			r.fail("header count", errors.New("version 4 with no header: want at least one"))
		}
		return nil
	}
	h := make(map[string]string, n)
	prev := ""
	for i := range n {
		k, v := r.string("header key"), r.string("header value")
		if r.err != nil {
			return nil
		}
		if k == "" || i > 0 && k <= prev {
			r.fail("header key", fmt.Errorf("key %q after %q: want non-empty keys in increasing order", clip(k), clip(prev)))
			return nil
		}
		h[k], prev = v, k
	}
	return h
}

// reader decodes the fields of a wire message; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string, err error) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: %w", what, err)
	}
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what, errShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what, errShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// int reads a non-negative int no larger than max.
func (r *reader) int(what string, max uint64) int {
	v := r.uvarint(what)
	if v > max {
		r.fail(what, fmt.Errorf("%d out of range [0, %d]", v, max))
		return 0
	}
	return int(v)
}

func (r *reader) bytes(what string) []byte {
	n := r.uvarint(what)
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail(what, errShort)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string(what string) string { return string(r.bytes(what)) }

func (r *reader) time(what string) time.Time {
	ns := r.uvarint(what)
	if ns == 0 || r.err != nil {
		return time.Time{}
	}
	if ns > 1e9 {
		r.fail(what, fmt.Errorf("nanoseconds %d out of range [0, 999999999]", ns-1))
		return time.Time{}
	}
	t := time.Unix(r.varint(what), int64(ns-1))
	if t.IsZero() {
		// The zero time's instant written the long way: one instant, one
		// encoding, so that what decodes re-encodes to the same bytes.
		r.fail(what, errors.New("the zero time not written as 0"))
	}
	return t
}

func (r *reader) duration(what string) time.Duration {
	v := r.varint(what)
	if v < 0 {
		r.fail(what, fmt.Errorf("negative duration %d", v))
		return 0
	}
	return time.Duration(v)
}

const maxIndex = 1<<31 - 1

// envelope is a decoded task message.
type envelope struct {
	// Message holds the fields the tasks share; Index is the first task's.
	// Payload and Attempt are not set.
	queue.Message
	Attempts int       // attempts made before this message
	Due      time.Time // not to run before
	Count    int       // tasks carried: Index to Index+Count-1
	payloads []byte    // Count length-prefixed payloads, checked by decodeEnvelope
}

// next cuts the next payload; decodeEnvelope checked that there are Count.
func (e *envelope) next() []byte {
	n, k := binary.Uvarint(e.payloads)
	p := e.payloads[k : k+int(n) : k+int(n)]
	e.payloads = e.payloads[k+int(n):]
	return p
}

// decodeEnvelope decodes a task message's body into e. Payloads alias body.
// The error says which field is wrong.
func decodeEnvelope(body []byte, e *envelope) error {
	if len(body) < 3 || body[0] != envMagic0 || body[1] != envMagic1 {
		return errors.New("not a gather task envelope (no GQ magic)")
	}
	if body[2] != envVersion && body[2] != envVersionHeaders {
		return fmt.Errorf("task envelope version %d: this broker reads versions %d and %d", body[2], envVersion, envVersionHeaders)
	}
	r := reader{b: body[3:]}
	m := &e.Message
	*m = queue.Message{}
	m.BatchID = r.string("batch ID")
	m.Queue = r.string("queue")
	m.Kind = r.string("kind")
	m.Priority = queue.Priority(r.int("priority", queue.NumPriorities-1))
	m.MaxAttempts = r.int("max attempts", maxIndex)
	m.Timeout = r.duration("timeout")
	m.Deadline = r.time("deadline")
	m.RunAt = r.time("run at")
	m.BackoffMin = r.duration("backoff min")
	m.BackoffMax = r.duration("backoff max")
	m.EnqueuedAt = r.time("enqueued at")
	if body[2] == envVersionHeaders {
		m.Headers = r.headers()
	}
	e.Attempts = r.int("attempts", maxIndex)
	e.Due = r.time("due")
	m.Index = r.int("index", maxIndex)
	e.Count = r.int("count", maxPack)
	if r.err == nil && (e.Count < 1 || m.Index > maxIndex-(e.Count-1)) {
		r.fail("count", fmt.Errorf("%d tasks from index %d: want 1 to %d, indices up to %d", e.Count, m.Index, maxPack, maxIndex))
	}
	e.payloads = r.b
	for range e.Count {
		if r.bytes("payload"); r.err != nil {
			break
		}
	}
	if r.err == nil && len(r.b) > 0 {
		r.fail("payload", fmt.Errorf("%d bytes after the last payload", len(r.b)))
	}
	if r.err != nil {
		return fmt.Errorf("task envelope field %w", r.err)
	}
	switch {
	case m.BatchID == "":
		return errors.New("task envelope has an empty batch ID")
	case m.Kind == "":
		return errors.New("task envelope has an empty kind")
	case m.MaxAttempts < 1:
		return fmt.Errorf("task envelope has max attempts %d: want at least 1", m.MaxAttempts)
	}
	return nil
}

// appendOutcome appends one outcome to a results message started with
// startResults.
func appendOutcome(b []byte, o *queue.Outcome) []byte {
	b = binary.AppendUvarint(b, uint64(o.Index))
	if o.Err == nil {
		b = append(b, outOK)
		return appendString(b, string(o.Output)) // no copy: appendString takes a string view
	}
	b = append(b, outFail)
	b = appendString(b, string(o.Err.Code))
	b = appendString(b, o.Err.Message)
	return binary.AppendUvarint(b, uint64(o.Err.Attempts))
}

func startResults(b []byte, kind byte) []byte {
	return append(b, resMagic0, resMagic1, resVersion, kind)
}

// decodeResults calls fn for each outcome of a results message of a batch
// of size tasks, or reports a cancel marker. Outputs alias body.
func decodeResults(body []byte, size int, fn func(o queue.Outcome)) (cancel bool, err error) {
	if len(body) < 4 || body[0] != resMagic0 || body[1] != resMagic1 {
		return false, errors.New("not a gather results message (no GR magic)")
	}
	if body[2] != resVersion {
		return false, fmt.Errorf("results message version %d: this broker reads version %d", body[2], resVersion)
	}
	switch body[3] {
	case resCancel:
		return true, nil
	case resOutcomes:
	default:
		return false, fmt.Errorf("results message of unknown type %d", body[3])
	}
	r := reader{b: body[4:]}
	if size < 1 && len(r.b) > 0 {
		return false, fmt.Errorf("results message with outcomes for a batch of %d tasks: want at least 1", size)
	}
	for len(r.b) > 0 && r.err == nil {
		var o queue.Outcome
		o.Index = r.int("index", uint64(max(size-1, 0)))
		if r.err == nil && len(r.b) == 0 {
			r.fail("status", errShort)
		}
		if r.err != nil {
			break
		}
		st := r.b[0]
		r.b = r.b[1:]
		switch st {
		case outOK:
			o.Output = r.bytes("output")
		case outFail:
			f := &queue.Failure{}
			f.Code = queue.Code(r.string("code"))
			f.Message = r.string("message")
			f.Attempts = r.int("attempts", maxIndex)
			o.Err = f
		default:
			r.fail("status", fmt.Errorf("unknown status %d", st))
		}
		if r.err == nil {
			fn(o)
		}
	}
	if r.err != nil {
		return false, fmt.Errorf("results message field %w", r.err)
	}
	return false, nil
}
