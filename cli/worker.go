package cli

import (
	"context"
	"errors"
	"runtime"

	"github.com/gather-go/gather/dashboard"
	"github.com/gather-go/gather/queue"
)

const workerExample = `  gather worker --nats nats://server:4222 --nats-token "$TOKEN" --concurrency 16 --queues default,bulk

  # at most 4 http tasks of default at once and 50 a second, across every worker given the same flags:
  gather worker --nats nats://server:4222 --limit default/http=4 --rate default/http=50:5`

func worker(ctx context.Context, e *env, args []string) int {
	var nf natsFlags
	var wf workerFlags
	var lf logFlags
	var metricsAddr string
	fs := e.flagSet("worker", "--nats URL [flags]", workerExample)
	nf.add(fs, "URL of the NATS server (gather serve --nats-listen) or cluster; required")
	wf.add(fs, "concurrency", "tasks run at once", runtime.GOMAXPROCS(0))
	lf.add(fs)
	stringVar(fs, &metricsAddr, "metrics-addr", "GATHER_METRICS_ADDR", "", "address to serve /metrics on, such as 127.0.0.1:9090 (default: none)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return e.usageErr("worker", "unexpected arguments %q: worker takes flags only", fs.Args())
	}
	log, err := lf.logger(e.stderr)
	if err != nil {
		return e.usageErr("worker", "%v", err)
	}
	var errs []error
	if nf.url == "" {
		errs = append(errs, errors.New("--nats URL is required (or GATHER_NATS_URL)"))
	}
	if wf.concurrency < 1 {
		errs = append(errs, errors.New("--concurrency: want at least 1"))
	}
	errs = append(errs, wf.check(), wf.ctl.check(e.allKinds(wf.kindsConfig()), wf.queues, true))
	if err := errors.Join(errs...); err != nil {
		return e.usageErr("worker", "%v", err)
	}
	nc, err := nf.connect("gather worker", log)
	if err != nil {
		log.Error("worker", "err", err)
		return ExitUsage
	}
	defer nc.Close()
	b, err := nf.broker(ctx, nc, wf.lease, log)
	if err != nil {
		log.Error("worker", "err", err)
		return ExitUsage
	}
	defer b.Close()
	var obs queue.Observer // nil, not a nil *metrics.Collector, when there is no listener
	if metricsAddr != "" {
		m, h, stop, err := serveMetrics(metricsAddr, log)
		if err != nil {
			log.Error("worker", "err", err)
			return ExitUsage
		}
		defer stop()
		obs = m
		if err := m.Watch(b); err != nil {
			log.Warn("metrics: no queue depth", "err", err)
		}
		log.Info("metrics", "url", h)
	}
	ann, err := dashboard.Announce(nc, nf.prefix, wf.queues, wf.concurrency)
	if err != nil {
		log.Error("worker", "err", err)
		return ExitUsage
	}
	defer ann.Close() // after the shutdown below: its last heartbeat says stopped
	w, err := e.newWorker(b, &wf, log, queue.MultiObserver(obs, ann))
	if err != nil {
		log.Error("worker", "err", err)
		return ExitUsage
	}
	stopSched, err := wf.ctl.startScheduler(b, log)
	if err != nil {
		log.Error("worker", "err", err)
		return ExitUsage
	}
	defer stopSched() // after the worker's shutdown below
	log.Info("working", append([]any{"nats", nc.ConnectedUrlRedacted(), "queues", wf.queues.String(), "concurrency", wf.concurrency}, wf.ctl.logAttrs()...)...)
	if err := w.Start(); err != nil {
		log.Error("worker", "err", err)
		return ExitUsage
	}
	<-ctx.Done()
	log.Info("draining: no new tasks, running ones finish or are handed back", "timeout", wf.shutdown)
	sctx, cancel := context.WithTimeout(context.Background(), wf.shutdown)
	defer cancel()
	if err := w.Shutdown(sctx); err != nil {
		log.Warn("worker stopped before its tasks finished; they were handed back", "err", err)
	}
	log.Info("stopped")
	return ExitOK
}
