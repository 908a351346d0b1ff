package natsfeed_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/gather-go/gather/queue/natsbroker/natsserver"
	"github.com/gather-go/gather/snapshot"
	"github.com/gather-go/gather/snapshot/natsfeed"
)

// A venue publishes quotes over NATS; a feed in another connection (it could
// be another process) cuts consistent snapshots of them. The first quote is
// lost on the way: the feed asks for it again and the cut completes.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir, _ := os.MkdirTemp("", "natsfeed-example")
	defer os.RemoveAll(dir)
	srv, err := natsserver.Start(ctx, &natsserver.Config{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	pubConn, _ := srv.Connect()
	defer pubConn.Close()
	subConn, _ := srv.Connect()
	defer subConn.Close()

	type quote struct{ Bid, Ask int64 }
	venue, err := natsfeed.NewPublisher(pubConn, &natsfeed.PublisherConfig[quote]{Prefix: "md", Source: "XNAS"})
	if err != nil {
		panic(err)
	}
	defer venue.Close()
	feed, err := natsfeed.Start(subConn, &natsfeed.Config[quote]{Prefix: "md",
		Snapshot: &snapshot.Config[string, quote]{Sources: []snapshot.Source{{Name: "XNAS"}}}})
	if err != nil {
		panic(err)
	}
	defer feed.Close()
	<-feed.Ready()

	open := time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)
	_, _ = venue.Record("AAPL", quote{19001, 19003}, open.Add(time.Millisecond)) // recorded, never sent
	_, _ = venue.Publish("MSFT", quote{41010, 41012}, open.Add(2*time.Millisecond))
	_ = venue.Heartbeat(open.Add(5 * time.Millisecond))

	cut, err := feed.Collector().At(ctx, open.Add(5*time.Millisecond))
	fmt.Println(cut, err)
	aapl, _ := cut.Get("XNAS", "AAPL")
	fmt.Println("AAPL", aapl.Bid, "x", aapl.Ask)
	// Output:
	// cut 2024-01-02T09:30:00.005Z complete <nil>
	// AAPL 19001 x 19003
}
