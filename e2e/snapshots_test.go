package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/dashboard"
	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
	"github.com/gather-go/gather/snapshot"
)

// TestDashboardSnapshots puts a real snapshot collector on the dashboard of
// a server built as gather serve builds it (embedded NATS, natsbroker, the
// API with the dashboard): three venues quote, the page's table follows
// the cuts, and a venue that falls silent shows as silent.
func TestDashboardSnapshots(t *testing.T) {
	url, latest := startSnapshotServer(t)
	venues := []string{"venue-a", "venue-b", "venue-c"}
	c, err := snapshot.New(&snapshot.Config[string, float64]{
		Sources:     []snapshot.Source{{Name: venues[0]}, {Name: venues[1]}, {Name: venues[2]}},
		SilentAfter: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	var silenced atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	feedErr := make(chan error, 1)
	wg.Go(func() { // the venues: a quote each every 50 ms, and a cut after each round
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for seq := uint64(1); ; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			now := time.Now()
			for i, v := range venues {
				if i == 2 && silenced.Load() {
					continue
				}
				if err := c.Apply(snapshot.Update[string, float64]{Source: v, Key: "ACME", Seq: seq, Time: now, Value: 100 + float64(seq%100)/100 + float64(i)}); err != nil {
					feedErr <- err
					return
				}
				// The venue says it has sent everything up to now.
				if err := c.Heartbeat(snapshot.Heartbeat{Source: v, Seq: seq, Time: now}); err != nil {
					feedErr <- err
					return
				}
			}
			cut, err := c.Cut(now)
			if err != nil {
				feedErr <- err
				return
			}
			view := dashboard.CutView("quotes", cut)
			view.Table = &dashboard.Table{Columns: []string{"venue", "ACME"}}
			for _, v := range venues {
				px, ok := cut.Get(v, "ACME")
				cell := "–"
				if ok {
					cell = fmt.Sprintf("%.2f", px)
				}
				view.Table.Rows = append(view.Table.Rows, []string{v, cell})
			}
			latest.Set(view)
		}
	})

	br := startBrowser(t)
	br.run(t, "open the snapshots",
		chromedp.Navigate(url+"/#/snapshots"),
		chromedp.WaitVisible(css(`.snapshot[data-name="quotes"] .snap-table tbody tr`)),
		waitJS(`document.querySelector('.snapshot[data-name="quotes"] .badge').textContent === "complete"`),
	)
	first := eval[string](t, br, `document.querySelector(".snap-table tbody").textContent`)
	br.run(t, "see the table update",
		waitJS(fmt.Sprintf(`document.querySelector(".snap-table tbody").textContent !== %q`, first)),
	)
	br.screenshot(t, "live")
	silenced.Store(true)
	br.run(t, "see venue-c silent",
		waitJS(`(() => { const b = document.querySelector('tr[data-source="venue-c"] .badge'); return b !== null && b.textContent === "silent"; })()`),
		waitJS(`document.querySelector('.snapshot[data-name="quotes"] .badge').textContent === "incomplete"`),
	)
	reason := eval[string](t, br, `document.querySelector('tr[data-source="venue-c"] td.muted').textContent`)
	if reason == "" {
		t.Fatal("venue-c is silent with no reason shown")
	}
	br.screenshot(t, "silent")
	br.checkErrors(t)
	select {
	case err := <-feedErr:
		t.Fatalf("feeding the collector: %v", err)
	default:
	}
}

// startSnapshotServer serves the API and a dashboard showing one
// snapshot, on an embedded NATS server, as gather serve does.
func startSnapshotServer(t *testing.T) (string, *dashboard.LatestSnapshot) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	ns, err := natsserver.Start(ctx, &natsserver.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := natsbroker.New(ctx, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	latest := &dashboard.LatestSnapshot{}
	d, err := dashboard.New(&dashboard.Config{Inspector: b, NATS: nc, Snapshots: []dashboard.SnapshotSource{latest}})
	if err != nil {
		t.Fatal(err)
	}
	client, err := queue.NewClient(b, &queue.ClientConfig{Observer: d})
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(&httpapi.Config{Client: client, UI: d})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	t.Cleanup(func() {
		api.Drain()
		d.Close() // ends the streams, which Shutdown would wait for
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		api.Close()
	})
	return "http://" + ln.Addr().String(), latest
}
