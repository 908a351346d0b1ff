package queue

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// Metrics holds the queue's Prometheus collectors. Create one with
// NewMetrics, register it (it is a prometheus.Collector) with the registry
// of your choice, and pass it to ClientConfig and WorkerConfig. Nothing is
// registered globally. A nil *Metrics records nothing. It is safe for
// concurrent use; recording a task costs a few atomic adds.
//
// The series, all labelled by queue (and kind where it applies):
// gather_queue_tasks_enqueued_total, _started_total, _succeeded_total,
// _failed_total (failed attempts), _retried_total, _dead_lettered_total,
// gather_queue_tasks_in_flight, gather_queue_depth (per level, from brokers
// that implement Stats, read at scrape time), and the histograms
// gather_queue_task_run_seconds and gather_queue_task_wait_seconds (enqueue
// to start).
type Metrics struct {
	enq, started, ok, failed, retried, dead *prometheus.CounterVec
	inflight                                *prometheus.GaugeVec
	run, wait                               *prometheus.HistogramVec
	depth                                   *prometheus.Desc

	mu      sync.Mutex
	sources []depthSource
}

type depthSource struct {
	s      Stats
	queues []string
}

// NewMetrics returns a fresh set of collectors.
func NewMetrics() *Metrics {
	ns := "gather_queue"
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
	}
	hist := func(name, help string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: name, Help: help,
			Buckets: prometheus.ExponentialBuckets(1e-5, 4, 12),
		}, []string{"queue", "kind"})
	}
	return &Metrics{
		enq:      counter("tasks_enqueued_total", "Tasks enqueued.", "queue", "kind"),
		started:  counter("tasks_started_total", "Task attempts started.", "queue", "kind"),
		ok:       counter("tasks_succeeded_total", "Task attempts that succeeded.", "queue", "kind"),
		failed:   counter("tasks_failed_total", "Task attempts that failed.", "queue", "kind"),
		retried:  counter("tasks_retried_total", "Failed attempts scheduled to run again.", "queue", "kind"),
		dead:     counter("tasks_dead_lettered_total", "Tasks dead-lettered after their last attempt.", "queue", "kind"),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "tasks_in_flight", Help: "Task attempts running now."}, []string{"queue", "kind"}),
		run:      hist("task_run_seconds", "How long handlers ran."),
		wait:     hist("task_wait_seconds", "How long tasks waited from enqueue to start."),
		depth:    prometheus.NewDesc(ns+"_depth", "Tasks waiting to run, per priority level.", []string{"queue", "level"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
	ch <- m.depth
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
	m.mu.Lock()
	sources := m.sources
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	levels := [NumPriorities]string{"low", "normal", "high", "critical"}
	for _, src := range sources {
		for _, q := range src.queues {
			d, err := src.s.Depth(ctx, q)
			if err != nil {
				continue
			}
			for l, n := range d {
				ch <- prometheus.MustNewConstMetric(m.depth, prometheus.GaugeValue, float64(n), q, levels[l])
			}
		}
	}
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.enq, m.started, m.ok, m.failed, m.retried, m.dead, m.inflight, m.run, m.wait}
}

// watch adds the depth of queues on b to the depth gauge, if b has Stats.
func (m *Metrics) watch(b Broker, queues []string) {
	s, ok := b.(Stats)
	if m == nil || !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, src := range m.sources {
		if src.s == s {
			return
		}
	}
	m.sources = append(m.sources, depthSource{s, queues})
}

func (m *Metrics) enqueued(queue, kind string, n int) {
	if m != nil {
		m.enq.WithLabelValues(queue, kind).Add(float64(n))
	}
}

// kindMetrics are the series of one queue and kind, resolved once.
type kindMetrics struct {
	started, ok, failed, retries, deads prometheus.Counter
	inflight                            prometheus.Gauge
	runs, waits                         prometheus.Observer
}

func (m *Metrics) forKind(queue, kind string) *kindMetrics {
	return &kindMetrics{
		started: m.started.WithLabelValues(queue, kind), ok: m.ok.WithLabelValues(queue, kind),
		failed: m.failed.WithLabelValues(queue, kind), retries: m.retried.WithLabelValues(queue, kind),
		deads: m.dead.WithLabelValues(queue, kind), inflight: m.inflight.WithLabelValues(queue, kind),
		runs: m.run.WithLabelValues(queue, kind), waits: m.wait.WithLabelValues(queue, kind),
	}
}

func (k *kindMetrics) start(wait time.Duration) {
	if k != nil {
		k.started.Inc()
		k.inflight.Inc()
		k.waits.Observe(wait.Seconds())
	}
}

func (k *kindMetrics) ran(d time.Duration, ok bool) {
	if k == nil {
		return
	}
	k.inflight.Dec()
	k.runs.Observe(d.Seconds())
	if ok {
		k.ok.Inc()
	} else {
		k.failed.Inc()
	}
}

func (k *kindMetrics) retried() {
	if k != nil {
		k.retries.Inc()
	}
}

func (k *kindMetrics) dead() {
	if k != nil {
		k.deads.Inc()
	}
}
