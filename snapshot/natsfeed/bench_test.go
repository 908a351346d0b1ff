package natsfeed_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gather-go/gather/snapshot"
	"github.com/gather-go/gather/snapshot/natsfeed"
)

// BenchmarkFeed measures the whole path of an update on an embedded server:
// Publisher.Publish (encode, publish with headers), delivery, Feed (decode,
// Collector.Apply), in batches of 1,000 updates closed by a heartbeat and a
// cut that waits for it. ns/update and updates/s are per update; allocs/op
// and B/op per batch of 1,000, client and server together (about 24
// allocations an update, most of them NATS headers built and parsed).
func BenchmarkFeed(b *testing.B) {
	type quote struct{ Bid, Ask int64 }
	ncs := connectB(b, 2)
	p, err := natsfeed.NewPublisher(ncs[0], &natsfeed.PublisherConfig[quote]{Prefix: "b", Source: "A"})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	f, err := natsfeed.Start(ncs[1], &natsfeed.Config[quote]{Prefix: "b",
		Snapshot: &snapshot.Config[string, quote]{Sources: []snapshot.Source{{Name: "A"}}}})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	<-f.Ready()
	keys := make([]string, 300)
	for i := range keys {
		keys[i] = fmt.Sprintf("S%03d", i)
	}
	ctx := context.Background()
	const batch = 1000
	at := time.Now()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for i := range batch {
			at = at.Add(time.Microsecond)
			if _, err := p.Publish(keys[i%len(keys)], quote{int64(i), int64(i + 1)}, at); err != nil {
				b.Fatal(err)
			}
		}
		at = at.Add(time.Microsecond)
		if err := p.Heartbeat(at); err != nil {
			b.Fatal(err)
		}
		if _, err := f.Collector().At(ctx, at); err != nil {
			b.Fatal(err)
		}
		n += batch
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "updates/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/update")
}
