package snapshotapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
	"github.com/gather-go/gather/snapshot/snapshotapi"
)

// Two sources post a quote and a heartbeat each; a reader asks for the cut
// at the heartbeats' time and gets it complete.
func Example() {
	specs, err := snapshotapi.ParseSpecs([]byte(`[{"name":"quotes","sources":[{"name":"A"},{"name":"B"}]}]`))
	if err != nil {
		panic(err)
	}
	svc, err := snapshotapi.New(&snapshotapi.Config{Specs: specs})
	if err != nil {
		panic(err)
	}
	defer svc.Close()
	mb, _ := membroker.New(nil)
	defer mb.Close()
	client, _ := queue.NewClient(mb, nil)
	api, _ := httpapi.New(&httpapi.Config{Client: client})
	defer api.Close()
	if err := api.Mount(svc); err != nil {
		panic(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()

	for _, body := range []string{
		`[{"source":"A","seq":1,"time":"2026-01-02T09:30:00.001Z","key":"AAPL","value":190.01},
		  {"type":"heartbeat","source":"A","seq":1,"time":"2026-01-02T09:30:00.1Z"}]`,
		`{"source":"B","seq":1,"time":"2026-01-02T09:30:00.002Z","key":"AAPL","value":190.02}
		 {"type":"heartbeat","source":"B","seq":1,"time":"2026-01-02T09:30:00.1Z"}`,
	} {
		res, err := http.Post(srv.URL+"/v1/snapshots/quotes/updates", "application/json", strings.NewReader(body))
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Print(res.StatusCode, " ", string(b))
	}
	res, err := http.Get(srv.URL + "/v1/snapshots/quotes?at=2026-01-02T09:30:00.1Z&wait=10s")
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	var cut struct {
		Complete bool
		Values   map[string]map[string]json.RawMessage
	}
	json.NewDecoder(res.Body).Decode(&cut)
	fmt.Println(res.StatusCode, cut.Complete, string(cut.Values["A"]["AAPL"]), string(cut.Values["B"]["AAPL"]))
	// Output:
	// 200 {"applied":2}
	// 200 {"applied":2}
	// 200 true 190.01 190.02
}
