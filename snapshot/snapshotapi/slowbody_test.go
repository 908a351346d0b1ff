package snapshotapi_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
	"github.com/gather-go/gather/snapshot/snapshotapi"
)

// TestSlowBodyCut sends the headers of a POST of updates and too little of
// its body: the server answers once BodyTimeout has passed rather than
// hold the connection for as long as the client does.
func TestSlowBodyCut(t *testing.T) {
	t.Parallel()
	hs := bareServer(t, `[{"name":"q","sources":[{"name":"A"}]}]`, &snapshotapi.Config{BodyTimeout: 100 * time.Millisecond})
	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/snapshots/q/updates HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[")
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // liveness only: the cut comes after 100ms
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %s", resp.Status)
	}
}

// bareServer serves collectors of specs, configured by cfg, on an API
// without a token, until the test ends.
func bareServer(t *testing.T, specs string, cfg *snapshotapi.Config) *httptest.Server {
	t.Helper()
	sp, err := snapshotapi.ParseSpecs([]byte(specs))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Specs = sp
	svc, err := snapshotapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := queue.NewClient(mb, nil)
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(&httpapi.Config{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Mount(svc); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api)
	t.Cleanup(func() {
		api.Drain()
		hs.Close()
		api.Close()
		svc.Close()
		mb.Close()
	})
	return hs
}

// TestStreamSlowReader opens the event stream of a collector with a large
// state and does not read it: the server ends the stream once a write has
// been blocked for StreamWriteTimeout, rather than hold it for as long as
// the client does.
func TestStreamSlowReader(t *testing.T) {
	t.Parallel()
	hs := bareServer(t, `[{"name":"q","interval":"20ms","grace":"20ms","sources":[{"name":"A"}]}]`,
		&snapshotapi.Config{StreamWriteTimeout: 100 * time.Millisecond})
	big := strings.Repeat("x", 1<<20)
	var body strings.Builder
	for i := range 4 {
		fmt.Fprintf(&body, `{"source":"A","seq":%d,"time":%q,"key":"k%d","value":%q}`+"\n", i+1, time.Now().Format(time.RFC3339Nano), i, big)
	}
	res, err := http.Post(hs.URL+"/v1/snapshots/q/updates", "application/json", strings.NewReader(body.String()))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("POST: %s", res.Status)
	}
	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/snapshots/q/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
	time.Sleep(2 * time.Second) // the client does not read; not a synchronisation
	// The stream has no end of its own: read until the server cuts it.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 64<<10)
	n := 0
	for {
		k, err := conn.Read(buf)
		n += k
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the stream still runs after 30s of reading (%d bytes): no write timeout", n)
		}
		if err != nil {
			return // cut
		}
	}
}
