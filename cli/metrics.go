package cli

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gather-go/gather/queue"
)

// newMetrics returns the queue's collectors and the /metrics handler of a
// registry of its own holding them and the Go runtime's. It is the one
// place the program builds its metrics.
func newMetrics() (*queue.Metrics, http.Handler) {
	reg := prometheus.NewRegistry()
	m := queue.NewMetrics()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
