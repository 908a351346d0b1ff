// Package metrics exports a queue's events as Prometheus metrics: use it when
// a Prometheus server scrapes the process; use a queue.Observer of your own
// for anything else (queue itself links no metrics library).
//
// A Collector is both a queue.Observer and a prometheus.Collector: create one
// with New, register it with the registry of your choice (nothing is
// registered globally), and give it to the clients and workers to count
// (queue.ClientConfig.Observer, queue.WorkerConfig.Observer):
//
//	m := metrics.New()
//	reg.MustRegister(m)
//	w, err := queue.NewWorker(broker, &queue.WorkerConfig{Concurrency: 8, Observer: m})
//	m.Watch(broker) // queue depth, read at scrape time
package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gather-go/gather/queue"
)

// Collector holds the queue's Prometheus collectors and keeps them up to date
// from the events it observes. The zero value is not usable: call New. It is
// safe for concurrent use; an event costs a map lookup under a read lock and
// a few atomic adds, and allocates nothing once its queue and kind were seen.
//
// The series, all labelled by queue (and kind where it applies):
// gather_queue_tasks_enqueued_total, _started_total, _succeeded_total,
// _failed_total (failed attempts), _retried_total, _dead_lettered_total,
// gather_queue_tasks_in_flight, gather_queue_depth (per level, from the
// brokers given to Watch, read at scrape time), and the histograms
// gather_queue_task_run_seconds and gather_queue_task_wait_seconds (enqueue
// to start).
type Collector struct {
	enq, started, ok, failed, retried, dead *prometheus.CounterVec
	inflight                                *prometheus.GaugeVec
	run, wait                               *prometheus.HistogramVec
	depth                                   *prometheus.Desc

	mu     sync.RWMutex
	series map[[2]string]*series // by queue and kind

	smu     sync.Mutex
	sources []source
}

// series are the collectors of one queue and kind, resolved once.
type series struct {
	enq, started, ok, failed, retried, dead prometheus.Counter
	inflight                                prometheus.Gauge
	run, wait                               prometheus.Observer
}

// source is a broker whose depth is read at scrape time.
type source struct {
	b      queue.Broker
	queues []string // for a broker that is not an Inspector
}

// New returns a Collector with every series at zero.
func New() *Collector {
	ns := "gather_queue"
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, []string{"queue", "kind"})
	}
	hist := func(name, help string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: name, Help: help,
			Buckets: prometheus.ExponentialBuckets(1e-5, 4, 12),
		}, []string{"queue", "kind"})
	}
	return &Collector{
		enq:      counter("tasks_enqueued_total", "Tasks enqueued."),
		started:  counter("tasks_started_total", "Task attempts started."),
		ok:       counter("tasks_succeeded_total", "Task attempts that succeeded."),
		failed:   counter("tasks_failed_total", "Task attempts that failed."),
		retried:  counter("tasks_retried_total", "Failed attempts scheduled to run again."),
		dead:     counter("tasks_dead_lettered_total", "Tasks dead-lettered after their last attempt."),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "tasks_in_flight", Help: "Task attempts running now."}, []string{"queue", "kind"}),
		run:      hist("task_run_seconds", "How long handlers ran."),
		wait:     hist("task_wait_seconds", "How long tasks waited from enqueue to start."),
		depth:    prometheus.NewDesc(ns+"_depth", "Tasks waiting to run, per priority level.", []string{"queue", "level"}, nil),
		series:   map[[2]string]*series{},
	}
}

// Observe implements queue.Observer.
func (c *Collector) Observe(e queue.Event) {
	switch e.Type {
	case queue.EventEnqueued:
		c.of(e.Queue, e.Kind).enq.Add(float64(e.Count))
	case queue.EventStarted:
		s := c.of(e.Queue, e.Kind)
		s.started.Inc()
		s.inflight.Inc()
		s.wait.Observe(e.Elapsed.Seconds())
	case queue.EventSucceeded, queue.EventFailed:
		s := c.of(e.Queue, e.Kind)
		s.inflight.Dec()
		s.run.Observe(e.Elapsed.Seconds())
		if e.Type == queue.EventSucceeded {
			s.ok.Inc()
		} else {
			s.failed.Inc()
		}
	case queue.EventRetried:
		c.of(e.Queue, e.Kind).retried.Inc()
	case queue.EventDeadLettered:
		c.of(e.Queue, e.Kind).dead.Inc()
	}
}

// of returns the series of queue q and kind k, creating them on first use.
func (c *Collector) of(q, k string) *series {
	key := [2]string{q, k}
	c.mu.RLock()
	s := c.series[key]
	c.mu.RUnlock()
	if s != nil {
		return s
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s = c.series[key]; s == nil {
		s = &series{
			enq: c.enq.WithLabelValues(q, k), started: c.started.WithLabelValues(q, k),
			ok: c.ok.WithLabelValues(q, k), failed: c.failed.WithLabelValues(q, k),
			retried: c.retried.WithLabelValues(q, k), dead: c.dead.WithLabelValues(q, k),
			inflight: c.inflight.WithLabelValues(q, k),
			run:      c.run.WithLabelValues(q, k), wait: c.wait.WithLabelValues(q, k),
		}
		c.series[key] = s
	}
	return s
}

// Watch adds the depth of b's queues to gather_queue_depth, read at scrape
// time: every queue when b implements queue.Inspector, else the named
// queues (queue.DefaultQueue when none is named) when b implements
// queue.Stats. It returns an error wrapping errors.ErrUnsupported when b
// implements neither. Watching a broker twice changes nothing.
func (c *Collector) Watch(b queue.Broker, queues ...string) error {
	_, insp := b.(queue.Inspector)
	_, stats := b.(queue.Stats)
	if !insp && !stats {
		return fmt.Errorf("metrics: watch broker %T: it reports no depth: %w", b, errors.ErrUnsupported)
	}
	if len(queues) == 0 {
		queues = []string{queue.DefaultQueue}
	}
	c.smu.Lock()
	defer c.smu.Unlock()
	for _, s := range c.sources {
		if s.b == b {
			return nil
		}
	}
	c.sources = append(c.sources, source{b, append([]string(nil), queues...)})
	return nil
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, col := range c.collectors() {
		col.Describe(ch)
	}
	ch <- c.depth
}

// depthTimeout bounds the depth reads of one scrape.
const depthTimeout = 5 * time.Second

var levels = [queue.NumPriorities]string{"low", "normal", "high", "critical"}

// Collect implements prometheus.Collector. It reads the depth of the watched
// brokers' queues; a broker that fails to answer within 5 s is left out of
// this scrape.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, col := range c.collectors() {
		col.Collect(ch)
	}
	c.smu.Lock()
	sources := c.sources
	c.smu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), depthTimeout)
	defer cancel()
	emit := func(q string, d [queue.NumPriorities]int) {
		for l, n := range d {
			ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n), q, levels[l])
		}
	}
	for _, src := range sources {
		if in, ok := src.b.(queue.Inspector); ok {
			if qs, err := in.Queues(ctx); err == nil {
				for _, q := range qs {
					emit(q.Name, q.Depth)
				}
				continue
			}
		}
		st, ok := src.b.(queue.Stats)
		if !ok {
			continue
		}
		for _, q := range src.queues {
			if d, err := st.Depth(ctx, q); err == nil {
				emit(q, d)
			}
		}
	}
}

func (c *Collector) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.enq, c.started, c.ok, c.failed, c.retried, c.dead, c.inflight, c.run, c.wait}
}

var _ interface {
	queue.Observer
	prometheus.Collector
} = (*Collector)(nil)
