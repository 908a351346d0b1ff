// Package natsserver starts an embedded nats-server with JetStream, in the
// calling process, for queue/natsbroker: use it when a program should need
// nothing installed (the default of cmd/gather), and in tests; use an
// external NATS cluster instead when tasks must survive the machine. It is a
// separate package so that importing natsbroker does not link the server.
//
// By default the server listens on no port: clients connect in-process
// (Server.Connect), so nothing on the machine can reach it. Listen and
// Cluster open loopback (or other) ports when asked.
package natsserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config configures an embedded server. Dir is required.
type Config struct {
	// Dir is the JetStream store directory (created if missing).
	Dir string
	// Name names the server; required and unique within a cluster.
	// Default "gather".
	Name string
	// SyncAlways makes the file store fsync every write before
	// acknowledging it: a task acknowledged to Enqueue survives a power
	// loss, at the cost of an fsync per publish batch (see the durability
	// tiers in natsbroker's package doc). Default false.
	SyncAlways bool
	// SyncInterval is how often the file store fsyncs when SyncAlways is
	// off. Default: the server's (2 minutes).
	SyncInterval time.Duration
	// Listen is the client address to listen on, such as "127.0.0.1:4222"
	// or "127.0.0.1:0" for any free port. Default "": no listener.
	Listen string
	// Cluster joins or forms a JetStream cluster. Default nil: standalone.
	Cluster *Cluster
	// Logs enables the server's own logging to stderr. Default false.
	// Logger, when set, takes precedence.
	Logs bool
	// Logger receives the server's own logs (notices at Info, warnings,
	// errors; debug and trace lines at Debug when the handler enables it).
	// Default nil: none, unless Logs.
	Logger *slog.Logger

	// Token, or User and Password, are the credentials a client must
	// present; Connect presents them itself. Default: none. Set them when
	// Listen is not on loopback: anyone who reaches the port can otherwise
	// enqueue, claim and read every task.
	Token    string
	User     string
	Password string
	// TLS, when set, makes the client listener require TLS with this
	// configuration. Default nil: plain TCP.
	TLS *tls.Config
}

// Cluster configures clustering: a route listener and the routes to the
// other servers.
type Cluster struct {
	Name   string   // the cluster's name, the same on every server
	Listen string   // route address, such as "127.0.0.1:6222"
	Routes []string // route URLs of the other servers, such as "nats://127.0.0.1:6223"
}

// Server is a running embedded server. Shutdown stops it; its methods are
// safe for concurrent use.
type Server struct {
	s                     *server.Server
	token, user, password string
}

// Start starts a server and waits until it accepts connections (and, when
// standalone, until JetStream is ready), or ctx ends.
func Start(ctx context.Context, cfg *Config) (*Server, error) {
	if cfg == nil || cfg.Dir == "" {
		return nil, errors.New("natsserver: Config.Dir is required: the JetStream store directory")
	}
	opts := &server.Options{
		ServerName:         cfg.Name,
		JetStream:          true,
		StoreDir:           cfg.Dir,
		SyncAlways:         cfg.SyncAlways,
		SyncInterval:       cfg.SyncInterval,
		NoSigs:             true,
		DontListen:         cfg.Listen == "",
		Host:               "127.0.0.1",
		Port:               -1,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: -1,
		JetStreamMaxStore:  -1,
		Authorization:      cfg.Token,
		Username:           cfg.User,
		Password:           cfg.Password,
	}
	if (cfg.User == "") != (cfg.Password == "") {
		return nil, errors.New("natsserver: Config.User and Config.Password go together: set both or neither")
	}
	if cfg.Token != "" && cfg.User != "" {
		return nil, errors.New("natsserver: Config.Token and Config.User exclude each other: set one")
	}
	if cfg.TLS != nil {
		opts.TLSConfig = cfg.TLS
		opts.TLS = true
		opts.TLSTimeout = 2
	}
	if opts.ServerName == "" {
		opts.ServerName = "gather"
	}
	if cfg.Listen != "" {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsserver: Config.Listen: %w", err)
		}
		opts.Host, opts.Port = host, port
	}
	if c := cfg.Cluster; c != nil {
		host, port, err := splitHostPort(c.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsserver: Cluster.Listen: %w", err)
		}
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: port}
		if len(c.Routes) > 0 {
			opts.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsserver: %w", err)
	}
	switch {
	case cfg.Logger != nil:
		h := cfg.Logger.Handler()
		debug := h.Enabled(context.Background(), slog.LevelDebug)
		s.SetLoggerV2(slogLogger{cfg.Logger}, debug, false, false)
	case cfg.Logs:
		s.ConfigureLogger()
	}
	s.Start()
	wait := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	if !s.ReadyForConnections(wait) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, errors.New("natsserver: server not ready for connections in time")
	}
	return &Server{s: s, token: cfg.Token, user: cfg.User, password: cfg.Password}, nil
}

// slogLogger is nats-server's Logger on a *slog.Logger.
type slogLogger struct{ l *slog.Logger }

func (g slogLogger) Noticef(format string, v ...any) {
	g.l.Info(fmt.Sprintf(format, v...), "src", "nats")
}
func (g slogLogger) Warnf(format string, v ...any) {
	g.l.Warn(fmt.Sprintf(format, v...), "src", "nats")
}
func (g slogLogger) Fatalf(format string, v ...any) {
	g.l.Error(fmt.Sprintf(format, v...), "src", "nats")
}
func (g slogLogger) Errorf(format string, v ...any) {
	g.l.Error(fmt.Sprintf(format, v...), "src", "nats")
}
func (g slogLogger) Debugf(format string, v ...any) {
	g.l.Debug(fmt.Sprintf(format, v...), "src", "nats")
}
func (g slogLogger) Tracef(format string, v ...any) {
	g.l.Debug(fmt.Sprintf(format, v...), "src", "nats")
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	if port == 0 {
		port = -1 // the server's "any free port"
	}
	return host, port, nil
}

// Connect returns a client connection to the server, in-process (no
// socket), with the server's credentials. The caller closes it.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{nats.InProcessServer(s.s)}
	switch {
	case s.token != "":
		base = append(base, nats.Token(s.token))
	case s.user != "":
		base = append(base, nats.UserInfo(s.user, s.password))
	}
	return nats.Connect("", append(base, opts...)...)
}

// ClientURL returns the URL clients connect to, or "" without a listener.
func (s *Server) ClientURL() string {
	if s.s.Addr() == nil {
		return ""
	}
	return s.s.ClientURL()
}

// ClusterAddr returns the route listener's address, or nil.
func (s *Server) ClusterAddr() net.Addr { return s.s.ClusterAddr() }

// Server returns the underlying nats-server, for what this package does
// not wrap.
func (s *Server) Server() *server.Server { return s.s }

// Shutdown stops the server and returns once it has stopped (its
// goroutines exited, its files flushed and closed).
func (s *Server) Shutdown() {
	s.s.Shutdown()
	s.s.WaitForShutdown()
}
