package natsbroker

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
)

// TestEnvelopeHeaders: headers survive the wire in version 4, a task
// without headers keeps version 3 (what earlier releases read), and a
// version 4 body with no header, an empty key, keys out of order or too
// many headers is refused.
func TestEnvelopeHeaders(t *testing.T) {
	m := queue.Message{BatchID: "b", Queue: "q", Kind: "k", MaxAttempts: 1, EnqueuedAt: time.Unix(7, 0),
		Headers: map[string]string{"traceparent": "00-abc-def-01", "a": "", "tenant": "t1"}}
	body := appendEnvelope(nil, &m, 1, time.Time{}, [][]byte{[]byte("1")})
	if body[2] != envVersionHeaders {
		t.Fatalf("version %d with headers, want %d", body[2], envVersionHeaders)
	}
	var e envelope
	if err := decodeEnvelope(body, &e); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e.Message, m) || e.Attempts != 1 {
		t.Fatalf("decoded %+v, want %+v", e.Message, m)
	}
	plain := m
	plain.Headers = nil
	if b := appendEnvelope(nil, &plain, 0, time.Time{}, [][]byte{nil}); b[2] != envVersion {
		t.Fatalf("version %d without headers, want %d", b[2], envVersion)
	}
	// Hand-made version 4 bodies: the fields of m up to the enqueue time,
	// then headers as given, then the rest.
	v3 := appendEnvelope(nil, &plain, 0, time.Time{}, [][]byte{nil})
	// The last five bytes: attempts 0, due none, index 0, count 1 and the
	// payload's length 0.
	cut := len(v3) - 5
	head, tail := v3[3:cut], v3[cut:]
	for name, hdrs := range map[string][]string{
		"valid":         {"a", "1", "b", "2"},
		"no header":     {},
		"empty key":     {"", "v"},
		"out of order":  {"b", "1", "a", "2"},
		"duplicate key": {"a", "1", "a", "2"},
	} {
		b := append([]byte{envMagic0, envMagic1, envVersionHeaders}, head...)
		b = append(b, byte(len(hdrs)/2))
		for _, s := range hdrs {
			b = appendString(b, s)
		}
		b = append(b, tail...)
		err := decodeEnvelope(b, &e)
		switch {
		case name == "valid":
			if err != nil || !reflect.DeepEqual(e.Headers, map[string]string{"a": "1", "b": "2"}) {
				t.Errorf("valid headers: %v, headers %v", err, e.Headers)
			}
		case err == nil || !strings.Contains(err.Error(), "header"):
			t.Errorf("%s: %v, want an error about the headers", name, err)
		}
	}
	many := map[string]string{}
	for i := range queue.MaxHeaders + 1 {
		many[strings.Repeat("k", i+1)] = ""
	}
	m.Headers = many
	if err := decodeEnvelope(appendEnvelope(nil, &m, 0, time.Time{}, [][]byte{nil}), &e); err == nil || !strings.Contains(err.Error(), "header count") {
		t.Errorf("%d headers: %v, want an error about the header count", len(many), err)
	}
}
