package demo_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/signal"

	"github.com/gather-go/gather/demo"
)

// A program runs the demo until Ctrl-C, with exit codes 0, 1 and 2; here
// the arguments follow the program and command names, as in "gather demo".
func ExampleRun() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(demo.Run(ctx, os.Args[2:], os.Stdout, os.Stderr))
}

// A caller that serves a dashboard gets the demo's running parts, serves
// them, and returns the URL that the demo prints first. Here the latest
// round's NBBOs as JSON on a loopback port, served until the demo ends.
func ExampleRunConfig() {
	ctx := context.Background()
	code := demo.RunConfig(ctx, demo.Config{
		Args:   []string{"--duration", "30s"},
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Dashboard: func(ctx context.Context, live *demo.Live) (string, error) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return "", err
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var quotes []demo.NBBO
				if r := live.Latest(); r != nil {
					quotes = r.Quotes
				}
				_ = json.NewEncoder(w).Encode(quotes)
			})}
			go srv.Serve(ln)
			context.AfterFunc(ctx, func() { srv.Close() }) // the demo ended
			return "http://" + ln.Addr().String() + "/", nil
		},
	})
	os.Exit(code)
}
