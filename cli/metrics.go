package cli

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gather-go/gather/queue/metrics"
)

// newMetrics returns the queue's collectors and the /metrics handler of a
// registry of its own holding them and the Go runtime's. It is the one
// place the program builds its metrics.
func newMetrics() (*metrics.Collector, http.Handler) {
	reg := prometheus.NewRegistry()
	m := metrics.New()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// serveMetrics serves /metrics alone on addr, for a worker process. stop
// shuts the listener down and waits for its goroutine.
func serveMetrics(addr string, log *slog.Logger) (m *metrics.Collector, url string, stop func(), err error) {
	m, h := newMetrics()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener", "err", err)
		}
	}()
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		<-done
	}
	return m, "http://" + ln.Addr().String() + "/metrics", stop, nil
}
