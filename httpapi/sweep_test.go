package httpapi_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// An idle server lets go of finished batches once their TTL passes: no
// new request is needed to forget them.
func TestIdleServerForgetsExpiredBatches(t *testing.T) {
	t.Parallel()
	b, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := queue.NewClient(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := queue.NewWorker(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	echo := queue.NewKind[int, int]("echo")
	queue.HandleFunc(w, echo, func(_ context.Context, n int) (int, error) { return n, nil })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	defer w.Shutdown(ctx)
	s, err := httpapi.New(&httpapi.Config{Client: c, ResultTTL: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(s)
	defer hs.Close()
	resp, err := hs.Client().Post(hs.URL+"/v1/batches?wait=30s", "application/json", strings.NewReader(`{"kind":"echo","items":[1,2,3]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("batch: %d", resp.StatusCode)
	}
	if httpapi.Followed(s) != 1 {
		t.Fatalf("following %d batches after one, want 1", httpapi.Followed(s))
	}
	// The sweep runs every second; give a loaded machine room.
	for httpapi.Followed(s) != 0 {
		if ctx.Err() != nil {
			t.Fatalf("still following %d batches a minute after their TTL of 10ms", httpapi.Followed(s))
		}
		time.Sleep(50 * time.Millisecond) // polling a condition nothing signals
	}
}
