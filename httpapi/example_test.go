package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// The API on an in-process broker: a batch submitted over HTTP, awaited
// with wait, its results in input order.
func Example() {
	ctx := context.Background()
	broker, _ := membroker.New(nil)
	defer broker.Close()
	upper := queue.NewKind[string, string]("upper")
	worker, _ := queue.NewWorker(broker, nil)
	queue.HandleFunc(worker, upper, func(ctx context.Context, s string) (string, error) { return strings.ToUpper(s), nil })
	worker.Start()
	defer worker.Shutdown(ctx)

	client, _ := queue.NewClient(broker, nil)
	api, _ := httpapi.New(&httpapi.Config{Client: client, Kinds: map[string]string{"upper": "upper-cases a string"}})
	defer api.Close()
	srv := httptest.NewServer(api) // or http.ListenAndServe("127.0.0.1:8080", api)
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/v1/batches?wait=30s", "application/json",
		strings.NewReader(`{"kind":"upper","items":["bid","ask"]}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status)
	fmt.Println(strings.Split(string(body), `"results":`)[1])
	// Output:
	// 200 OK
	// [{"ok":true,"value":"BID"},{"ok":true,"value":"ASK"}]}
}
