package httpapi_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSlowBody sends a batch's headers and too little of its body: the
// server answers once BodyTimeout has passed, rather than hold the
// connection for as long as the client does; a body that arrives in time
// is served, and a wait longer than BodyTimeout is not cut by it.
func TestSlowBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{cfg: func(c *httpapiConfig) { c.BodyTimeout = 100 * time.Millisecond }})
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/batches HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // liveness only: the cut comes after 100ms
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("stalled body: %s", resp.Status)
	}
	// The gate holds the batch past BodyTimeout; the wait still ends with
	// its results once the gate opens.
	time.AfterFunc(300*time.Millisecond, e.openGate) // past BodyTimeout; not a synchronisation
	if r := e.do("POST", "/v1/batches?wait=30s", `{"kind":"gate","items":[1]}`); r.status != 200 || !strings.Contains(string(r.body), `"value":2`) {
		t.Fatalf("a wait past BodyTimeout: %d %s", r.status, r.body)
	}
}
