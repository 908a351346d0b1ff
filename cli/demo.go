package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gather-go/gather/dashboard"
	"github.com/gather-go/gather/demo"
	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/queue"
)

// demoAddrEnv names the address the demo's dashboard listens on; default
// a free port on 127.0.0.1.
const demoAddrEnv = "GATHER_DEMO_ADDR"

// demoRows is how many symbols the dashboard's quote table shows.
const demoRows = 20

// demoCmd runs "gather demo": the whole system on embedded defaults (package
// demo): simulated venues over NATS, consistent snapshots, calculations
// fanned out through the queue, and the dashboard at the URL it prints
// first.
func demoCmd(ctx context.Context, e *env, args []string) int {
	var (
		obs fwdObserver
		wg  sync.WaitGroup // the dashboard's goroutines, waited for before returning
	)
	code := demo.RunConfig(ctx, demo.Config{
		Args: args, Stdout: e.stdout, Stderr: e.stderr, Observer: &obs,
		Dashboard: func(ctx context.Context, live *demo.Live) (string, error) {
			return serveDemoDashboard(ctx, live, &obs, &wg)
		},
	})
	wg.Wait()
	return code
}

// fwdObserver hands events to the dashboard once it exists: the demo's
// client and worker are made before the dashboard, which needs the broker.
type fwdObserver struct {
	d atomic.Pointer[dashboard.Dashboard]
}

func (o *fwdObserver) Observe(ev queue.Event) {
	if d := o.d.Load(); d != nil {
		d.Observe(ev)
	}
}

// serveDemoDashboard serves the HTTP API and the dashboard on the demo's
// broker until ctx ends, with the latest round's consolidated quotes as a
// snapshot table; its goroutines are counted in wg.
func serveDemoDashboard(ctx context.Context, live *demo.Live, obs *fwdObserver, wg *sync.WaitGroup) (string, error) {
	addr := os.Getenv(demoAddrEnv)
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if !isLoopback(addr) {
		// The demo has no token: it serves the machine it runs on only.
		return "", fmt.Errorf("%s=%s: want a loopback address, such as 127.0.0.1:8080 (use gather serve with a token to listen elsewhere)", demoAddrEnv, addr)
	}
	client, err := queue.NewClient(live.Broker(), nil)
	if err != nil {
		return "", err
	}
	quotes := &dashboard.LatestSnapshot{}
	d, err := dashboard.New(&dashboard.Config{Inspector: live.Broker(), Snapshots: []dashboard.SnapshotSource{quotes}})
	if err != nil {
		return "", err
	}
	api, err := httpapi.New(&httpapi.Config{Client: client, UI: d, Queues: []string{queue.DefaultQueue}})
	if err != nil {
		d.Close()
		return "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		api.Close()
		d.Close()
		return "", err
	}
	obs.d.Store(d)
	hs := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	wg.Add(3)
	go func() {
		defer wg.Done()
		_ = hs.Serve(ln) // ErrServerClosed once shut down below
	}()
	go func() { // the quote table, from each round the demo finishes
		defer wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		var last *demo.Round
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if r := live.Latest(); r != nil && r != last {
				last = r
				quotes.Set(roundView(r))
			}
		}
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		obs.d.Store(nil)
		d.Close() // ends the page's streams, so that Shutdown need not wait for them
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			_ = hs.Close()
		}
		api.Close()
	}()
	return "http://" + ln.Addr().String() + "/", nil
}

// roundView is a round's cut with the first symbols' consolidated quotes.
func roundView(r *demo.Round) dashboard.SnapshotView {
	v := dashboard.CutView("quotes", r.Cut)
	t := &dashboard.Table{Columns: []string{"symbol", "bid", "venue", "offer", "venue", "spread", "mid", "market"}}
	for _, q := range r.Quotes[:min(demoRows, len(r.Quotes))] {
		if !q.Quoted {
			t.Rows = append(t.Rows, []string{q.Symbol, "", "", "", "", "", "", "not quoted"})
			continue
		}
		state := "normal"
		switch {
		case q.Crossed:
			state = "crossed"
		case q.Locked:
			state = "locked"
		}
		t.Rows = append(t.Rows, []string{q.Symbol, cents(q.Bid), q.BidVenue, cents(q.Ask), q.AskVenue,
			cents(q.Spread), fmt.Sprintf("%.3f", float64(q.MidX2)/200), state})
	}
	v.Table = t
	return v
}

func cents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}
