package marketsim_test

import (
	"context"
	"testing"
	"time"

	"github.com/gather-go/gather/marketsim"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
	"github.com/gather-go/gather/snapshot"
	"github.com/gather-go/gather/snapshot/natsfeed"
)

// A market on a real embedded server feeds a collector through natsfeed: the
// feed joins late and starts from the venues' images, the lossy venue's gaps
// are resent on request, and cuts complete.
func TestMarketFeedsCollector(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := natsserver.Start(ctx, &natsserver.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	pub, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	m, err := marketsim.Start(pub, "t.mkt", &marketsim.Config{Seed: 3, Venues: 3, Symbols: 50, Rate: 1000, LossEvery: 20,
		SilentAt: time.Hour, SilentFor: time.Second, SilentEvery: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Join once every venue has recorded something, so images are needed.
	for !allRecorded(m) {
		if ctx.Err() != nil {
			t.Fatalf("venues recorded nothing: %+v (%v)", m.Stats(), m.Err())
		}
		time.Sleep(time.Millisecond)
	}
	cfg := &natsfeed.Config[marketsim.Quote]{Prefix: "t.mkt", Snapshot: &snapshot.Config[string, marketsim.Quote]{}}
	for _, v := range m.Venues() {
		cfg.Snapshot.Sources = append(cfg.Snapshot.Sources, snapshot.Source{Name: v.Name})
	}
	f, err := natsfeed.Start(sub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	<-f.Ready()
	if st := f.Stats(); st.Images != 3 {
		t.Errorf("stats %+v: want an image of each of the 3 venues", st)
	}
	// Wait for resends, then for a cut after them to complete.
	for f.Stats().Answered == 0 {
		if ctx.Err() != nil {
			t.Fatalf("no resend answered: feed %+v, market %+v", f.Stats(), m.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	cut, err := f.Collector().At(ctx, time.Now())
	if err != nil {
		t.Fatalf("cut: %v (feed %+v)", err, f.Stats())
	}
	if n := cut.Len("XNAS"); n == 0 {
		t.Error("the cut holds no XNAS quote")
	}
	if err := m.Err(); err != nil {
		t.Fatal(err)
	}
}

func allRecorded(m *marketsim.Market) bool {
	for _, st := range m.Stats() {
		if st.Seq == 0 {
			return false
		}
	}
	return true
}
