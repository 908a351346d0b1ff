package natsbroker

import (
	"bytes"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	now := time.Unix(0, time.Now().UnixNano())
	s := &queue.Submission{
		BatchID: "b1", Queue: "q", Kind: "k", Priority: queue.PriorityHigh, MaxAttempts: 3,
		Timeout: time.Second, Deadline: now.Add(time.Hour), RunAt: now.Add(time.Minute),
		BackoffMin: time.Millisecond, BackoffMax: time.Second, EnqueuedAt: now,
		Payloads: [][]byte{[]byte(`"a"`), []byte(`"b"`)},
	}
	body := appendEnvelope(nil, s, 1)
	var m queue.Message
	if err := decodeEnvelope(body, &m); err != nil {
		t.Fatal(err)
	}
	want := s.Message(1)
	if m.BatchID != want.BatchID || m.Index != 1 || m.Queue != want.Queue || m.Kind != want.Kind ||
		m.Priority != want.Priority || m.MaxAttempts != 3 || m.Timeout != want.Timeout ||
		!m.Deadline.Equal(want.Deadline) || !m.RunAt.Equal(want.RunAt) || m.BackoffMin != want.BackoffMin ||
		m.BackoffMax != want.BackoffMax || !m.EnqueuedAt.Equal(want.EnqueuedAt) || !bytes.Equal(m.Payload, want.Payload) {
		t.Fatalf("decoded %+v, want %+v", m, want)
	}
	for _, bad := range [][]byte{nil, []byte("GQ"), []byte("xx\x01"), []byte("GQ\x02"), body[:10]} {
		if err := decodeEnvelope(bad, &m); err == nil {
			t.Errorf("decodeEnvelope(%q) accepted it", bad)
		}
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

// FuzzDecodeEnvelope: any body either decodes to a valid message or is
// rejected with an error; never a panic, and what decodes re-encodes to the
// same bytes.
func FuzzDecodeEnvelope(f *testing.F) {
	s := &queue.Submission{BatchID: "b", Queue: "default", Kind: "double", MaxAttempts: 1, Payloads: [][]byte{[]byte("7")}}
	f.Add(appendEnvelope(nil, s, 0))
	f.Add([]byte("GQ\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		var m queue.Message
		if err := decodeEnvelope(body, &m); err != nil {
			return
		}
		if m.BatchID == "" || m.Kind == "" || m.MaxAttempts < 1 || m.Index < 0 ||
			m.Priority < 0 || m.Priority >= queue.NumPriorities || m.Timeout < 0 {
			t.Fatalf("decoded an invalid message %+v", m)
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
