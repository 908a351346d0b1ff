package dashboard

import (
	"testing"
	"time"
)

// FuzzHeartbeat feeds the worker table what anyone on the NATS subject
// could send: it never panics, never keeps a heartbeat without an ID, and
// stays within its bound.
func FuzzHeartbeat(f *testing.F) {
	f.Add([]byte(`{"id":"w1","host":"h","pid":1,"queues":["default"],"concurrency":4,"running":1,"processed":9}`))
	f.Add([]byte(`{"id":"","stopped":true}`))
	f.Add([]byte(`[1,2,3]`))
	f.Add([]byte(`{"id":"w2","queues":null,"started":"not a time"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var tb workerTable
		now := time.Unix(1_700_000_000, 0)
		ok := tb.heard(data, now)
		rows, _ := tb.list(now)
		if !ok && len(rows) != 0 || ok && (len(rows) != 1 || rows[0].ID == "") {
			t.Fatalf("heard %v, rows %+v", ok, rows)
		}
	})
}
