package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gather-go/gather/dashboard"
	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/kinds"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
	"github.com/gather-go/gather/snapshot/snapshotapi"
)

const serveExample = `  # embedded NATS in ./gather-data, the API on 127.0.0.1:8080, built-in workers:
  gather serve --data ./gather-data

  # a task of kind http every night at 3 in Paris, however many servers run it:
  gather serve --schedule '{"name":"refresh","cron":"0 3 * * *","tz":"Europe/Paris","kind":"http","input":{"url":"https://example.com/refresh"}}'

  # no built-in workers; remote "gather worker"s connect to port 4222 with a token:
  GATHER_TOKEN=s3cret GATHER_NATS_TOKEN=n4ts gather serve --workers 0 \
      --addr 0.0.0.0:8080 --nats-listen 0.0.0.0:4222`

type serveFlags struct {
	data, addr, token, tlsCert, tlsKey, addrFile string
	hosts                                        listFlag
	natsListen, natsTLSCert, natsTLSKey          string
	maxWait, resultTTL                           time.Duration
	maxItems, maxItem                            int
	maxBody                                      int64
	dashboard                                    bool
	snapshots                                    string
	snapSpecs                                    []snapshotapi.Spec
	kinds                                        []kinds.Def // the program's, for the check
	nats                                         natsFlags
	work                                         workerFlags
	log                                          logFlags
}

func serve(ctx context.Context, e *env, args []string) int {
	var f serveFlags
	fs := e.flagSet("serve", "[flags]", serveExample)
	stringVar(fs, &f.data, "data", "GATHER_DATA", "gather-data", "directory of the embedded NATS server's file store")
	f.nats.add(fs, "URL of a NATS server or cluster to use instead of the embedded one")
	stringVar(fs, &f.natsListen, "nats-listen", "GATHER_NATS_LISTEN", "", "address the embedded NATS server listens on for remote workers, such as 127.0.0.1:4222; off loopback it needs --nats-token or --nats-user")
	stringVar(fs, &f.natsTLSCert, "nats-tls-cert", "GATHER_NATS_TLS_CERT", "", "PEM certificate file: the NATS listener requires TLS")
	stringVar(fs, &f.natsTLSKey, "nats-tls-key", "GATHER_NATS_TLS_KEY", "", "PEM key file of --nats-tls-cert")
	stringVar(fs, &f.addr, "addr", "GATHER_ADDR", "127.0.0.1:8080", "address of the HTTP API; off loopback it needs --token")
	secretVar(fs, &f.token, "token", "GATHER_TOKEN", "bearer token every API request must carry")
	stringVar(fs, &f.tlsCert, "tls-cert", "GATHER_TLS_CERT", "", "PEM certificate file: the API is served over HTTPS")
	stringVar(fs, &f.tlsKey, "tls-key", "GATHER_TLS_KEY", "", "PEM key file of --tls-cert")
	if v := envDefault("GATHER_HOSTS", ""); v != "" {
		f.hosts.Set(v)
	}
	fs.Var(&f.hosts, "hosts", "without --token, comma-separated host names the API answers to besides loopback ones (DNS rebinding guard); * for any (env GATHER_HOSTS)")
	stringVar(fs, &f.addrFile, "addr-file", "GATHER_ADDR_FILE", "", "write {\"http\":..., \"nats\":...} to this file once listening, for scripts")
	fs.DurationVar(&f.maxWait, "max-wait", httpapi.DefaultMaxWait, "longest wait a request may ask for")
	fs.DurationVar(&f.resultTTL, "result-ttl", httpapi.DefaultResultTTL, "how long the API keeps a finished batch's results in memory after the last request about it (the broker keeps them for --retention)")
	fs.IntVar(&f.maxItems, "max-items", httpapi.DefaultMaxItems, "most items in one batch")
	fs.IntVar(&f.maxItem, "max-item", httpapi.DefaultMaxItem, "largest item, in bytes of JSON")
	fs.Int64Var(&f.maxBody, "max-body", httpapi.DefaultMaxBody, "largest request body, in bytes")
	fs.BoolVar(&f.dashboard, "dashboard", true, "serve the web dashboard at / (behind the same token as the API)")
	stringVar(fs, &f.snapshots, "snapshots", "GATHER_SNAPSHOTS", "", "snapshot collectors to host at /v1/snapshots: a JSON file, or the JSON itself ([{\"name\":\"quotes\",\"sources\":[{\"name\":\"A\"}]}]); see docs/program.md")
	f.work.add(fs, "workers", "built-in workers (tasks run at once); 0 for none", runtime.GOMAXPROCS(0))
	f.log.add(fs)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return e.usageErr("serve", "unexpected arguments %q: serve takes flags only", fs.Args())
	}
	log, err := f.log.logger(e.stderr)
	if err != nil {
		return e.usageErr("serve", "%v", err)
	}
	f.kinds = e.allKinds(f.work.kindsConfig())
	if err := f.check(); err != nil {
		return e.usageErr("serve", "%v", err)
	}
	if err := e.runServe(ctx, &f, log); err != nil {
		log.Error("serve stopped", "err", err)
		return ExitUsage
	}
	return ExitOK
}

func (f *serveFlags) check() error {
	var errs []error
	if f.work.concurrency < 0 {
		errs = append(errs, fmt.Errorf("--workers %d: want 0 or more", f.work.concurrency))
	}
	if f.work.concurrency > 0 {
		if err := f.work.check(); err != nil {
			errs = append(errs, err)
		}
	}
	if !isLoopback(f.addr) && f.token == "" {
		errs = append(errs, fmt.Errorf("--addr %s is not loopback: give a --token (or GATHER_TOKEN) so that only its holders reach the API", f.addr))
	}
	if f.natsListen != "" {
		if f.nats.url != "" {
			errs = append(errs, errors.New("--nats-listen opens the embedded server's port: it has no use with --nats"))
		}
		if !isLoopback(f.natsListen) && f.nats.token == "" && f.nats.user == "" {
			errs = append(errs, fmt.Errorf("--nats-listen %s is not loopback: give --nats-token or --nats-user and --nats-password", f.natsListen))
		}
	}
	if f.nats.token != "" && f.nats.user != "" {
		errs = append(errs, errors.New("--nats-token and --nats-user exclude each other: give one"))
	}
	if (f.nats.user == "") != (f.nats.password == "") {
		errs = append(errs, errors.New("--nats-user and --nats-password go together"))
	}
	if err := f.work.ctl.check(f.kinds, f.work.queues, f.work.concurrency > 0); err != nil {
		errs = append(errs, err)
	}
	if err := durationOK("result-ttl", f.resultTTL, time.Second, 24*time.Hour); err != nil {
		errs = append(errs, err)
	}
	if err := durationOK("max-wait", f.maxWait, 0, time.Hour); err != nil {
		errs = append(errs, err)
	}
	if f.maxItems < 1 || f.maxItem < 1 || f.maxBody < 1 {
		errs = append(errs, errors.New("--max-items, --max-item and --max-body: want at least 1"))
	}
	if specs, err := loadSnapshotSpecs(f.snapshots); err != nil {
		errs = append(errs, fmt.Errorf("--snapshots: %w", err))
	} else {
		f.snapSpecs = specs
	}
	if f.nats.url == "" && f.data == "" {
		errs = append(errs, errors.New("--data is empty: give the directory of the embedded server's store, or --nats URL"))
	}
	return errors.Join(errs...)
}

// runServe runs the server until ctx ends, then drains it: the API refuses
// new work, running tasks finish within --shutdown-timeout or are handed
// back, open requests end, and everything closes.
func (e *env) runServe(ctx context.Context, f *serveFlags, log *slog.Logger) error {
	httpTLS, err := loadTLS(f.tlsCert, f.tlsKey)
	if err != nil {
		return fmt.Errorf("--tls-cert: %w", err)
	}
	var nc *nats.Conn
	var natsURL string
	if f.nats.url != "" {
		c, err := f.nats.connect("gather serve", log)
		if err != nil {
			return err
		}
		nc, natsURL = c, f.nats.url
	} else {
		natsTLS, err := loadTLS(f.natsTLSCert, f.natsTLSKey)
		if err != nil {
			return fmt.Errorf("--nats-tls-cert: %w", err)
		}
		natsLog := log
		if !log.Enabled(ctx, slog.LevelDebug) {
			natsLog, _ = f.log.loggerAt(e.stderr, slog.LevelWarn) // the server's notices are its banner
		}
		if err := os.MkdirAll(f.data, 0o750); err != nil {
			return fmt.Errorf("--data: %w", err)
		}
		srv, err := natsserver.Start(ctx, &natsserver.Config{
			Dir: f.data, Listen: f.natsListen, Logger: natsLog,
			Token: f.nats.token, User: f.nats.user, Password: f.nats.password, TLS: natsTLS,
		})
		if err != nil {
			return err
		}
		defer srv.Shutdown()
		if nc, err = srv.Connect(nats.Name("gather serve")); err != nil {
			return err
		}
		natsURL = srv.ClientURL()
	}
	defer nc.Close()
	broker, err := f.nats.broker(ctx, nc, f.work.lease, log)
	if err != nil {
		return err
	}
	defer broker.Close()
	metrics, metricsHandler := newMetrics()
	if err := metrics.Watch(broker, f.work.queues...); err != nil {
		log.Warn("metrics: no queue depth", "err", err)
	}
	var dash *dashboard.Dashboard
	var ui http.Handler
	obs := queue.Observer(metrics)
	if f.dashboard {
		var in queue.Inspector
		in, _ = queue.Broker(broker).(queue.Inspector)
		if dash, err = dashboard.New(&dashboard.Config{Inspector: in, NATS: nc, Prefix: f.nats.prefix, Logger: log}); err != nil {
			return err
		}
		defer dash.Close()
		ui, obs = dash, queue.MultiObserver(metrics, dash)
	}
	client, err := queue.NewClient(broker, &queue.ClientConfig{MaxPayload: f.maxItem, Logger: log, Observer: obs})
	if err != nil {
		return err
	}
	ks := e.allKinds(f.work.kindsConfig())
	names := map[string]string{}
	for _, k := range ks {
		names[k.Name] = k.Doc
	}
	disabled := map[string]string{}
	if len(f.work.execAllow) == 0 {
		delete(names, "exec")
		disabled["exec"] = "start gather serve with --exec-allow listing the commands it may run"
	}
	api, err := httpapi.New(&httpapi.Config{
		Client: client, Kinds: names, Disabled: disabled, Queues: f.work.queues, Token: f.token,
		Hosts: f.hosts, MaxBody: f.maxBody, MaxItems: f.maxItems, MaxItem: f.maxItem, MaxWait: f.maxWait,
		ResultTTL: f.resultTTL, Metrics: metricsHandler, Logger: log, UI: ui, Controls: f.work.ctl.controls(),
		Ready: func(context.Context) error {
			if s := nc.Status(); s != nats.CONNECTED {
				return fmt.Errorf("NATS connection %v", s)
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	defer api.Close()
	closeSnapshots, err := mountSnapshots(api, f.snapSpecs, nc, log)
	if err != nil {
		return err
	}
	defer closeSnapshots()

	var wk *queue.Worker
	if f.work.concurrency > 0 {
		ann, err := dashboard.Announce(nc, f.nats.prefix, f.work.queues, f.work.concurrency)
		if err != nil {
			return err
		}
		defer ann.Close() // after the workers' shutdown: its last heartbeat says stopped
		if wk, err = e.newWorker(broker, &f.work, log, queue.MultiObserver(obs, ann)); err != nil {
			return err
		}
		if err := wk.Start(); err != nil {
			return err
		}
	}
	stopSched, err := f.work.ctl.startScheduler(broker, log)
	if err == nil {
		defer stopSched() // after the workers' shutdown: schedules tick until the end
	}
	var ln net.Listener
	if err == nil {
		ln, err = net.Listen("tcp", f.addr)
	}
	if err != nil {
		if wk != nil {
			wk.Shutdown(context.Background())
		}
		return err
	}
	hs := &http.Server{
		Handler: api, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, TLSConfig: httpTLS,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1) // the one Serve goroutine's result
	go func() {
		if httpTLS != nil {
			served <- hs.ServeTLS(ln, "", "")
		} else {
			served <- hs.Serve(ln)
		}
	}()
	scheme := "http"
	if httpTLS != nil {
		scheme = "https"
	}
	httpURL := scheme + "://" + ln.Addr().String()
	if dash != nil {
		log.Info("dashboard", "url", httpURL+"/")
	}
	log.Info("serving", append([]any{"api", httpURL, "nats", redactURLs(natsURL), "workers", f.work.concurrency, "queues", f.work.queues.String()}, f.work.ctl.logAttrs()...)...)
	if f.addrFile != "" {
		b, _ := json.Marshal(map[string]string{"http": httpURL, "nats": natsURL})
		if err := os.WriteFile(f.addrFile, b, 0o600); err != nil {
			log.Error("writing --addr-file", "err", err)
		}
	}
	if e.p.onListen != nil {
		e.p.onListen(httpURL, natsURL)
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	log.Info("draining: new work gets 503, running tasks finish or are handed back")
	api.Drain()
	if dash != nil {
		dash.Close() // ends its event streams, which Shutdown would wait for
	}
	if wk != nil {
		sctx, cancel := context.WithTimeout(context.Background(), f.work.shutdown)
		if err := wk.Shutdown(sctx); err != nil {
			log.Warn("workers stopped before their tasks finished; the tasks were handed back", "err", err)
		}
		cancel()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	if serveErr == nil {
		serveErr = <-served
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	log.Info("stopped")
	return serveErr
}
