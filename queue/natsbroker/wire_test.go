package natsbroker

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	now := time.Unix(0, time.Now().UnixNano())
	m := queue.Message{
		BatchID: "b1", Index: 7, Queue: "q", Kind: "k", Priority: queue.PriorityHigh, MaxAttempts: 3,
		Timeout: time.Second, Deadline: now.Add(time.Hour), RunAt: now.Add(time.Minute),
		BackoffMin: time.Millisecond, BackoffMax: time.Second, EnqueuedAt: now,
	}
	payloads := [][]byte{[]byte(`"a"`), {}, []byte(`"ccc"`)}
	body := appendEnvelope(nil, &m, 2, now.Add(time.Second), payloads)
	var e envelope
	if err := decodeEnvelope(body, &e); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e.Message, m) || e.Attempts != 2 || !e.Due.Equal(now.Add(time.Second)) || e.Count != 3 {
		t.Fatalf("decoded %+v, want %+v, 2 attempts, due in a second, 3 tasks", e, m)
	}
	for i, want := range payloads {
		if got := e.next(); !bytes.Equal(got, want) {
			t.Fatalf("payload %d = %q, want %q", i, got, want)
		}
	}
	for _, bad := range [][]byte{
		nil, []byte("GQ"), []byte("xx\x02"), []byte("GQ\x01"), body[:10], body[:len(body)-1], append(body[:len(body):len(body)], 0),
		appendEnvelope(nil, &m, 0, time.Time{}, nil), // no task
	} {
		if err := decodeEnvelope(bad, &e); err == nil {
			t.Errorf("decodeEnvelope(%q) accepted it", bad)
		}
	}
	m.Index = maxIndex
	if err := decodeEnvelope(appendEnvelope(nil, &m, 0, time.Time{}, payloads), &e); err == nil || !strings.Contains(err.Error(), "count") {
		t.Errorf("tasks past the largest index: %v, want an error about the count", err)
	}
}

// TestEnvelopeTimes: every time keeps its instant through the wire, the
// zero time stays "none" and the Unix epoch stays a time (Unix nanoseconds
// wrapped outside 1678-2262 and made the epoch read as none).
func TestEnvelopeTimes(t *testing.T) {
	for _, tm := range []time.Time{
		{}, time.Unix(0, 0), time.Unix(0, 1), time.Unix(-1, 999_999_999),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1000, 6, 1, 12, 0, 0, 5, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(2262, 4, 12, 0, 0, 0, 0, time.UTC), time.Date(1677, 9, 21, 0, 0, 0, 0, time.UTC),
	} {
		m := queue.Message{BatchID: "b", Queue: "q", Kind: "k", MaxAttempts: 1, Deadline: tm, RunAt: tm, EnqueuedAt: tm}
		var e envelope
		if err := decodeEnvelope(appendEnvelope(nil, &m, 0, tm, [][]byte{nil}), &e); err != nil {
			t.Fatalf("%v: %v", tm, err)
		}
		for what, got := range map[string]time.Time{"deadline": e.Deadline, "run at": e.RunAt, "enqueued at": e.EnqueuedAt, "due": e.Due} {
			if !got.Equal(tm) || got.IsZero() != tm.IsZero() {
				t.Errorf("%s %v decoded as %v", what, tm, got)
			}
		}
	}
	// One instant, one encoding: the zero time written as seconds and
	// nanoseconds is refused.
	long := binary.AppendVarint(binary.AppendUvarint(nil, 1), time.Time{}.Unix())
	r := reader{b: long}
	if r.time("t"); r.err == nil {
		t.Error("the zero time written the long way was accepted")
	}
	r = reader{b: binary.AppendVarint(binary.AppendUvarint(nil, 1e9+1), 0)}
	if r.time("t"); r.err == nil {
		t.Error("a nanosecond count of 1e9 was accepted")
	}
}

func TestResultsRoundTrip(t *testing.T) {
	b := startResults(nil, resOutcomes)
	b = appendOutcome(b, &queue.Outcome{Index: 2, Output: []byte("42")})
	b = appendOutcome(b, &queue.Outcome{Index: 0, Err: &queue.Failure{Code: queue.CodePanic, Message: "boom", Attempts: 2}})
	var got []queue.Outcome
	cancel, err := decodeResults(b, 3, func(o queue.Outcome) { got = append(got, o) })
	if err != nil || cancel || len(got) != 2 || got[0].Index != 2 || string(got[0].Output) != "42" ||
		got[1].Index != 0 || got[1].Err.Code != queue.CodePanic || got[1].Err.Message != "boom" || got[1].Err.Attempts != 2 {
		t.Fatalf("decoded %+v, %v, %v", got, cancel, err)
	}
	if _, err := decodeResults(b, 2, func(queue.Outcome) {}); err == nil {
		t.Fatal("an index past the batch size was accepted")
	}
	if cancel, err := decodeResults(startResults(nil, resCancel), 3, nil); !cancel || err != nil {
		t.Fatalf("cancel marker: %v, %v", cancel, err)
	}
}

// FuzzDecodeEnvelope: any body either decodes to a valid message of 1 to
// maxPack tasks or is rejected with an error, never a panic; and what
// decodes re-encodes to a body that decodes to the same.
func FuzzDecodeEnvelope(f *testing.F) {
	m := queue.Message{BatchID: "b", Queue: "default", Kind: "double", MaxAttempts: 1}
	f.Add(appendEnvelope(nil, &m, 0, time.Time{}, [][]byte{[]byte("7")}))
	f.Add(appendEnvelope(nil, &m, 3, time.Unix(5, 0), [][]byte{[]byte("1"), []byte("22"), nil}))
	f.Add([]byte("GQ\x03"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		var e envelope
		if err := decodeEnvelope(body, &e); err != nil {
			return
		}
		if e.BatchID == "" || e.Kind == "" || e.MaxAttempts < 1 || e.Index < 0 || e.Count < 1 || e.Count > maxPack ||
			e.Index > maxIndex-(e.Count-1) || e.Attempts < 0 || e.Priority < 0 || e.Priority >= queue.NumPriorities || e.Timeout < 0 {
			t.Fatalf("decoded an invalid message %+v", e)
		}
		var payloads [][]byte
		for range e.Count {
			payloads = append(payloads, e.next())
		}
		if len(e.payloads) != 0 {
			t.Fatalf("%d bytes left after %d payloads", len(e.payloads), e.Count)
		}
		var again envelope
		if err := decodeEnvelope(appendEnvelope(nil, &e.Message, e.Attempts, e.Due, payloads), &again); err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		if !reflect.DeepEqual(again.Message, e.Message) || again.Attempts != e.Attempts || !again.Due.Equal(e.Due) || again.Count != e.Count {
			t.Fatalf("re-encoded %+v, decoded %+v", e, again)
		}
		for i := range payloads {
			if p := again.next(); !bytes.Equal(p, payloads[i]) {
				t.Fatalf("payload %d re-encoded as %q, was %q", i, p, payloads[i])
			}
		}
	})
}

// FuzzDecodeResults: any results body yields outcomes with in-range
// indices, or an error; never a panic.
func FuzzDecodeResults(f *testing.F) {
	b := startResults(nil, resOutcomes)
	b = appendOutcome(b, &queue.Outcome{Index: 1, Output: []byte("x")})
	b = appendOutcome(b, &queue.Outcome{Index: 0, Err: &queue.Failure{Code: queue.CodeFailed, Message: "m", Attempts: 1}})
	f.Add(b, 2)
	f.Add(startResults(nil, resCancel), 1)
	f.Fuzz(func(t *testing.T, body []byte, size int) {
		if size < 0 || size > 1<<20 {
			return
		}
		_, _ = decodeResults(body, size, func(o queue.Outcome) {
			if o.Index < 0 || o.Index >= size {
				t.Fatalf("outcome index %d for a batch of %d", o.Index, size)
			}
		})
	})
}

func TestParseAckReply(t *testing.T) {
	for _, c := range []struct {
		reply          string
		delivered, seq uint64
	}{
		{"$JS.ACK.S.C.3.42.7.1700000000000000000.0", 3, 42},
		{"$JS.ACK.hub.ACCHASH.S.C.1.9.9.1700000000000000000.5", 1, 9},
		{"$JS.ACK.hub.ACCHASH.S.C.2.10.9.1700000000000000000.5.rnd", 2, 10},
	} {
		d, s, err := parseAckReply(c.reply)
		if err != nil || d != c.delivered || s != c.seq {
			t.Errorf("parseAckReply(%q) = %d, %d, %v; want %d, %d", c.reply, d, s, err, c.delivered, c.seq)
		}
	}
	for _, bad := range []string{"", "_INBOX.x", "$JS.ACK.S.C.3.42", "$JS.ACK.S.C.x.42.7.1.0", "$JS.ACK.S.C.0.42.7.1.0", "$JS.ACK.S.C.1.-4.7.1.0"} {
		if _, _, err := parseAckReply(bad); err == nil {
			t.Errorf("parseAckReply(%q) accepted it", bad)
		}
	}
}

// FuzzParseAckReply: any reply subject yields a positive delivery count
// and stream sequence, or an error; never a panic.
func FuzzParseAckReply(f *testing.F) {
	f.Add("$JS.ACK.S.C.3.42.7.1700000000000000000.0")
	f.Add("$JS.ACK.hub.ACCHASH.S.C.2.10.9.1700000000000000000.5.rnd")
	f.Fuzz(func(t *testing.T, reply string) {
		d, s, err := parseAckReply(reply)
		if err == nil && (d == 0 || s == 0) {
			t.Fatalf("parseAckReply(%q) = %d, %d without an error", reply, d, s)
		}
	})
}
