package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/kinds"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
)

// natsFlags are how a command reaches NATS and what the broker's streams
// are named.
type natsFlags struct {
	url, token, user, password, ca string
	prefix                         string
	replicas                       int
	maxDepth                       int
	retention                      time.Duration
}

func (n *natsFlags) add(fs *flag.FlagSet, urlUsage string) {
	stringVar(fs, &n.url, "nats", "GATHER_NATS_URL", "", urlUsage)
	secretVar(fs, &n.token, "nats-token", "GATHER_NATS_TOKEN", "NATS token")
	stringVar(fs, &n.user, "nats-user", "GATHER_NATS_USER", "", "NATS user")
	secretVar(fs, &n.password, "nats-password", "GATHER_NATS_PASSWORD", "NATS password")
	stringVar(fs, &n.ca, "nats-ca", "GATHER_NATS_CA", "", "PEM file of the CA that signed the NATS server's TLS certificate")
	fs.StringVar(&n.prefix, "prefix", natsbroker.DefaultPrefix, "name prefix of the broker's streams and subjects; the same on every process of a deployment")
	fs.DurationVar(&n.retention, "retention", natsbroker.DefaultRetention, "how long batches' results, idempotency keys and dead letters are kept")
	fs.IntVar(&n.replicas, "replicas", 1, "replicas of every stream: 1 on one server, 3 on a cluster (R3); the same on every process")
	fs.IntVar(&n.maxDepth, "max-depth", 0, "bound of each queue's waiting and leased tasks: a batch past it is refused (HTTP 429 queue_full), and a bounded queue stores each task in a message of its own; 0 takes the bound the queue was created with (default 16,777,216 messages); the same on every process")
}

func (n *natsFlags) connect(name string, log *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", "url", c.ConnectedUrlRedacted()) }),
	}
	switch {
	case n.token != "":
		opts = append(opts, nats.Token(n.token))
	case n.user != "":
		opts = append(opts, nats.UserInfo(n.user, n.password))
	}
	if n.ca != "" {
		opts = append(opts, nats.RootCAs(n.ca))
	}
	nc, err := nats.Connect(n.url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", n.url, err)
	}
	return nc, nil
}

// broker makes a natsbroker.Broker on nc.
func (n *natsFlags) broker(ctx context.Context, nc *nats.Conn, lease time.Duration, log *slog.Logger) (*natsbroker.Broker, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	b, err := natsbroker.New(ctx, js, &natsbroker.Config{Prefix: n.prefix, Replicas: n.replicas, Retention: n.retention, MaxDepth: n.maxDepth, AckWait: lease, Logger: log})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// workerFlags configure a queue.Worker and the built-in kinds.
type workerFlags struct {
	queues      listFlag
	concurrency int
	policy      string
	weights     string
	lease       time.Duration
	shutdown    time.Duration
	execAllow   listFlag
	httpMaxBody int64
	httpPrivate bool
	ctl         controlFlags // --limit, --rate, --schedule
}

func (w *workerFlags) add(fs *flag.FlagSet, concName, concUsage string, concDefault int) {
	w.queues = listFlag{queue.DefaultQueue}
	if v := envDefault("GATHER_QUEUES", ""); v != "" {
		w.queues.Set(v)
	}
	fs.Var(&w.queues, "queues", "comma-separated queues to serve (env GATHER_QUEUES)")
	fs.IntVar(&w.concurrency, concName, concDefault, concUsage)
	fs.StringVar(&w.policy, "policy", "strict", "priority policy: strict (higher levels first) or weighted")
	fs.StringVar(&w.weights, "weights", "1,2,4,8", "weighted policy's shares, low,normal,high,critical")
	fs.DurationVar(&w.lease, "lease", queue.DefaultLease, "how long a claimed task stays a worker's without a heartbeat: a dead worker's tasks run again after it")
	fs.DurationVar(&w.shutdown, "shutdown-timeout", queue.DefaultShutdownTimeout, "on SIGTERM, how long running tasks may finish before they are handed back (0: at once)")
	if v := envDefault("GATHER_EXEC_ALLOW", ""); v != "" {
		w.execAllow.Set(v)
	}
	fs.Var(&w.execAllow, "exec-allow", "comma-separated commands the exec kind may run; empty refuses exec (env GATHER_EXEC_ALLOW)")
	fs.Int64Var(&w.httpMaxBody, "http-max-body", kinds.DefaultHTTPMaxBody, "most bytes of a response body the http kind reads")
	fs.BoolVar(&w.httpPrivate, "http-block-private", false, "the http kind refuses loopback, private and link-local addresses")
	w.ctl.add(fs)
}

func (w *workerFlags) check() error {
	var errs []error
	if _, err := w.config(nil); err != nil {
		errs = append(errs, err)
	}
	if err := durationOK("lease", w.lease, time.Second, 24*time.Hour); err != nil {
		errs = append(errs, err)
	}
	if err := durationOK("shutdown-timeout", w.shutdown, 0, 24*time.Hour); err != nil {
		errs = append(errs, err)
	}
	for _, q := range w.queues {
		if err := queue.CheckName("queue", q); err != nil {
			errs = append(errs, fmt.Errorf("--queues: %v", err))
		}
	}
	if w.httpMaxBody < 1 {
		errs = append(errs, fmt.Errorf("--http-max-body %d: want at least 1", w.httpMaxBody))
	}
	return errors.Join(errs...)
}

func (w *workerFlags) kindsConfig() kinds.Config {
	return kinds.Config{HTTP: kinds.HTTPConfig{MaxBody: w.httpMaxBody, BlockPrivate: w.httpPrivate}, Exec: kinds.ExecConfig{Allow: w.execAllow}}
}

// config returns the worker's config.
func (w *workerFlags) config(log *slog.Logger) (*queue.WorkerConfig, error) {
	cfg := &queue.WorkerConfig{
		Queues: w.queues, Concurrency: w.concurrency, Lease: w.lease, ShutdownTimeout: w.shutdown, Logger: log,
		GlobalLimits: w.ctl.limits, GlobalRates: w.ctl.rates,
	}
	switch w.policy {
	case "strict":
		cfg.Policy = queue.Strict
	case "weighted":
		cfg.Policy = queue.Weighted
	default:
		return nil, fmt.Errorf("--policy %q: want strict or weighted", w.policy)
	}
	parts := strings.Split(w.weights, ",")
	if len(parts) != queue.NumPriorities {
		return nil, fmt.Errorf("--weights %q: want %d comma-separated shares, low to critical, such as 1,2,4,8", w.weights, queue.NumPriorities)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 || n > 1000 {
			return nil, fmt.Errorf("--weights %q: share %q: want an integer from 0 to 1000", w.weights, p)
		}
		cfg.Weights[i] = n
	}
	if cfg.Weights == ([queue.NumPriorities]int{}) {
		return nil, fmt.Errorf("--weights %q: want at least one share above 0", w.weights)
	}
	return cfg, nil
}

// newWorker builds a worker with every kind registered.
func (e *env) newWorker(b queue.Broker, w *workerFlags, log *slog.Logger, obs queue.Observer) (*queue.Worker, error) {
	cfg, err := w.config(log)
	if err != nil {
		return nil, err
	}
	cfg.Observer = obs
	wk, err := queue.NewWorker(b, cfg)
	if err != nil {
		return nil, err
	}
	for _, k := range e.allKinds(w.kindsConfig()) {
		k.Register(wk)
	}
	return wk, nil
}

// isLoopback reports whether addr's host is a loopback name or address.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func loadTLS(cert, key string) (*tls.Config, error) {
	if cert == "" && key == "" {
		return nil, nil
	}
	if cert == "" || key == "" {
		return nil, errors.New("a TLS certificate and its key go together: give both files")
	}
	c, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("loading the TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}, nil
}

// redactURLs returns a comma-separated list of URLs, as --nats takes it,
// with each URL's password replaced by xxxxx, for logs.
func redactURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		} else {
			parts[i] = "(unparsable URL)"
		}
	}
	return strings.Join(parts, ",")
}
