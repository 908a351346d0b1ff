package snapshotapi_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
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
	sp, err := snapshotapi.ParseSpecs([]byte(`[{"name":"q","sources":[{"name":"A"}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := snapshotapi.New(&snapshotapi.Config{Specs: sp, BodyTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	mb, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	client, err := queue.NewClient(mb, nil)
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(&httpapi.Config{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	if err := api.Mount(svc); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api)
	defer hs.Close()
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
