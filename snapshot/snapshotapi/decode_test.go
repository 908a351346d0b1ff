package snapshotapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzDecodeRecords feeds arbitrary bodies to the POST .../updates
// decoder: it never panics, returns between 1 and the limit of records, each
// of which passes its check and encodes back to a body that decodes to the
// same records; or it returns an error with a message.
func FuzzDecodeRecords(f *testing.F) {
	for _, s := range []string{
		`{"source":"A","seq":1,"time":"2026-01-02T09:30:00.001Z","key":"AAPL","value":{"bid":1,"ask":2}}`,
		`[{"source":"B","seq":1,"time":1767346200002000000,"key":"k","value":[1,2]},{"type":"heartbeat","source":"B","seq":1,"time":1767346200100000000}]`,
		"{\"source\":\"A\",\"seq\":2,\"time\":5,\"key\":\"k\",\"delete\":true}\n{\"type\":\"heartbeat\",\"source\":\"A\",\"seq\":2,\"time\":9,\"epoch\":3}\n",
		`{"type":"image","source":"A","seq":7,"time":"2026-01-02T09:30:00Z","entries":[{"key":"k","value":"v"}]}`,
		`{"type":"image","source":"A","seq":7,"untimed":true,"entries":[]}`,
		`[]`, `[`, `{}`, `null`, `[1]`, `{"source":"A","seq":1,"time":-1,"key":"k","value":1}`,
		`{"source":"A","seq":1,"time":"yesterday","key":"k","value":1}`, `[{"source":"A"}] x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		const max = 8
		recs, err := decodeRecords(bytes.NewReader(body), max)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if len(recs) == 0 || len(recs) > max {
			t.Fatalf("%d records", len(recs))
		}
		for i := range recs {
			if err := recs[i].check(); err != nil {
				t.Fatalf("record %d accepted but fails its check: %v", i, err)
			}
		}
		again, err := decodeRecords(strings.NewReader(encodeRecords(t, recs)), max)
		if err != nil {
			t.Fatalf("re-encoded records refused: %v", err)
		}
		if a, b := encodeRecords(t, recs), encodeRecords(t, again); a != b {
			t.Fatalf("round trip changed the records:\n%s\n%s", a, b)
		}
	})
}

// encodeRecords writes recs as a JSON array in the request format.
func encodeRecords(t *testing.T, recs []record) string {
	var out []map[string]any
	for _, r := range recs {
		m := map[string]any{"source": r.Source, "time": r.Time.UnixNano()}
		if r.Type != "" {
			m["type"] = r.Type
		}
		if r.Time.IsZero() {
			delete(m, "time")
		}
		if r.Seq != 0 {
			m["seq"] = r.Seq
		}
		if r.Key != "" {
			m["key"] = r.Key
		}
		if r.Value != nil {
			m["value"] = r.Value
		}
		for k, v := range map[string]bool{"delete": r.Delete, "end_of_event": r.EndOfEvent, "untimed": r.Untimed} {
			if v {
				m[k] = true
			}
		}
		if r.Epoch != 0 {
			m["epoch"] = r.Epoch
		}
		if r.Entries != nil {
			m["entries"] = r.Entries
		}
		out = append(out, m)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
