package dashboard_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/gather-go/gather/dashboard"
	"github.com/gather-go/gather/queue"
)

// TestStreamSlowPage opens the event stream and does not read it: once a
// write has waited StreamWriteTimeout the dashboard ends the stream and
// closes the connection, instead of holding one of its streams for as
// long as the page stays connected. The sockets' buffers are made small so
// that a few frames fill them.
func TestStreamSlowPage(t *testing.T) {
	e := newEnvServer(t, "", &dashboard.Config{StreamWriteTimeout: 100 * time.Millisecond, FrameInterval: 10 * time.Millisecond},
		func(s *httptest.Server) {
			s.Config.ConnState = func(c net.Conn, st http.ConnState) {
				if tc, ok := c.(*net.TCPConn); ok && st == http.StateNew {
					_ = tc.SetWriteBuffer(1 << 10)
				}
			}
		})
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(1 << 10)
	fmt.Fprintf(conn, "GET /dashboard/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
	rd := bufio.NewReader(conn)
	if line, err := rd.ReadString('\n'); err != nil || line != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("status line %q, %v", line, err)
	}
	// Keep the page busy (every task is an event in the charts' counts)
	// while it does not read.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := queue.EnqueueBatch(context.Background(), e.client, echoKind, make([]int, 100))
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := b.Await(context.Background()); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(stop); <-done }()
	time.Sleep(2 * time.Second) // the page does not read; not a synchronisation
	// Read to the end of the connection, or give up.
	_ = conn.SetReadDeadline(time.Now().Add(liveness))
	buf := make([]byte, 64<<10)
	total := 0
	for {
		n, err := rd.Read(buf)
		total += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the stream of a page that did not read for 2s was neither ended nor cut after %v (%d bytes read)", liveness, total)
		}
		if err != nil {
			return // ended: the dashboard gave up on the page
		}
	}
}
