package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestStreamSlowReader opens an event stream of a large batch and does not
// read it: the server ends the stream once a write has been blocked for
// StreamWriteTimeout, rather than hold it (and the batch) for as long as
// the client does.
func TestStreamSlowReader(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{cfg: func(c *httpapiConfig) { c.StreamWriteTimeout, c.MaxBody = 100*time.Millisecond, 16<<20 }})
	item := `"` + strings.Repeat("x", 3<<10) + `"`
	items := strings.Repeat(item+",", 2999) + item // 9 MB of events, more than the sockets buffer
	r := e.do("POST", "/v1/batches?wait=60s", `{"kind":"echo","items":[`+items+`]}`)
	var b struct{ ID, Status string }
	if err := json.Unmarshal(r.body, &b); err != nil || b.Status != "succeeded" {
		t.Fatalf("batch: %d %.200s", r.status, r.body)
	}
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/batches/%s/events HTTP/1.1\r\nHost: localhost\r\n\r\n", b.ID)
	time.Sleep(2 * time.Second) // the client does not read; not a synchronisation
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	// Read to the end of the stream, or of the connection.
	var got []byte
	buf := make([]byte, 64<<10)
	for !strings.Contains(string(got[max(len(got)-(128<<10), 0):]), "event: end") {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the stream neither ended nor was cut after a minute (%d bytes)", len(got))
		}
		if err != nil {
			return // cut: the server gave up on the client
		}
	}
	t.Fatalf("a client that did not read for 2s got the whole stream (%d bytes): no write timeout", len(got))
}
