package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
)

var noop = queue.NewKind[int, int]("noop")

// BenchmarkAwait10k submits and awaits a 10,000-item batch of a no-op kind
// on one embedded NATS server with one worker: over HTTP (POST with wait,
// the results in the response) and through the Go client. The goal is
// HTTP at most 1.5 times the Go client's time.
func BenchmarkAwait10k(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	srv, err := natsserver.Start(ctx, &natsserver.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	broker := func() *natsbroker.Broker {
		nc, err := srv.Connect()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		br, err := natsbroker.New(ctx, js, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { br.Close() })
		return br
	}
	w, err := queue.NewWorker(broker(), nil)
	if err != nil {
		b.Fatal(err)
	}
	queue.HandleFunc(w, noop, func(ctx context.Context, n int) (int, error) { return n, nil })
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	defer w.Shutdown(ctx)
	client, err := queue.NewClient(broker(), nil)
	if err != nil {
		b.Fatal(err)
	}
	api, err := httpapi.New(&httpapi.Config{Client: client, Kinds: map[string]string{"noop": ""}})
	if err != nil {
		b.Fatal(err)
	}
	defer api.Close()
	hs := httptest.NewServer(api)
	defer hs.Close()

	ins := make([]int, n)
	body := []byte(`{"kind":"noop","items":[`)
	for i := range ins {
		ins[i] = i
		if i > 0 {
			body = append(body, ',')
		}
		body = strconv.AppendInt(body, int64(i), 10)
	}
	body = append(body, "]}"...)

	b.Run("http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := hs.Client().Post(hs.URL+"/v1/batches?wait=60s", "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			var got struct {
				Status  string
				Results []struct {
					OK    bool
					Value int
				}
			}
			err = json.NewDecoder(resp.Body).Decode(&got)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || got.Status != "succeeded" || len(got.Results) != n || got.Results[n-1].Value != n-1 {
				b.Fatalf("status %d %s, %d results: %v", resp.StatusCode, got.Status, len(got.Results), err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tasks/s")
	})
	b.Run("go", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			batch, err := queue.EnqueueBatch(ctx, client, noop, ins)
			if err != nil {
				b.Fatal(err)
			}
			res, err := batch.AwaitSettled(ctx)
			cancel()
			if err != nil || len(res) != n || res[n-1].Value != n-1 {
				b.Fatalf("%d results: %v", len(res), err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tasks/s")
	})
}
