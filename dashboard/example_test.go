package dashboard_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/gather-go/gather/dashboard"
	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
	"github.com/gather-go/gather/snapshot"
)

// The dashboard observes the clients and workers, reads the broker, and is
// mounted as the API's UI, behind its host, token and origin checks.
func Example() {
	broker, _ := membroker.New(nil)
	defer broker.Close()
	dash, _ := dashboard.New(&dashboard.Config{Inspector: broker})
	defer dash.Close()
	// Give it to the workers too: queue.WorkerConfig{Observer: dash}.
	client, _ := queue.NewClient(broker, &queue.ClientConfig{Observer: dash})
	api, _ := httpapi.New(&httpapi.Config{Client: client, Token: "s3cret", UI: dash})
	defer api.Close()
	srv := httptest.NewServer(api)
	defer srv.Close()
	defer dash.Close() // ends the page's streams before the server's Close

	resp, err := http.Get(srv.URL + "/") // the page is public; what it shows takes the token
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	// Output: 200 text/html; charset=utf-8
}

// CutView turns a collector's cut into what the dashboard shows: each
// source's state, and why one holds the cut back.
func ExampleCutView() {
	c, _ := snapshot.New(&snapshot.Config[string, float64]{
		Sources:     []snapshot.Source{{Name: "A"}, {Name: "B"}},
		SilentAfter: time.Hour,
	})
	t0 := time.Unix(1_700_000_000, 0)
	_ = c.Heartbeat(snapshot.Heartbeat{Source: "A", Time: t0.Add(3 * time.Second)})
	_ = c.Heartbeat(snapshot.Heartbeat{Source: "B", Time: t0.Add(time.Second)})
	cut, _ := c.Cut(t0.Add(3 * time.Second))

	v := dashboard.CutView("quotes", cut)
	fmt.Println(v.Name, "complete:", v.Complete)
	for _, s := range v.Sources {
		fmt.Printf("%s %s %q\n", s.Name, s.State, s.Reason)
	}
	// Output:
	// quotes complete: false
	// A current ""
	// B stale "\"B\" stale by 2s"
}
