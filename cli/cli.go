// Package cli is the gather program's commands, importable: use Main to
// build a gather binary that runs your own kinds beside the built-in ones
// (http, exec, echo, sleep), and Run to call a command from a test.
//
//	package main
//
//	import (
//		"github.com/gather-go/gather/cli"
//		"github.com/gather-go/gather/kinds"
//		"github.com/gather-go/gather/queue"
//	)
//
//	var resize = queue.NewKind[Image, Thumb]("resize")
//
//	func main() { cli.Main(kinds.Func(resize, "makes a thumbnail", makeThumb)) }
//
// The commands: serve (embedded NATS or a cluster, the HTTP API, built-in
// workers), worker (more workers), submit (a batch from the command line),
// batch, dead and queues (inspection; queues also pauses and resumes a
// queue). serve and worker take the queue controls: --limit (global
// concurrency limits), --rate (global rate limits) and --schedule
// (periodic tasks). Each prints its flags and an example
// with --help. Machine output goes to stdout as JSON lines, human messages
// and logs to stderr. Exit status: 0 ok, 1 the work failed, 2 usage or
// transport error.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gather-go/gather/kinds"
)

// Exit statuses.
const (
	ExitOK     = 0 // every task succeeded
	ExitFailed = 1 // a task failed
	ExitUsage  = 2 // usage or transport error
)

// Program is a gather binary: the built-in kinds and Kinds. The zero value
// is the stock gather program. A Program is safe for concurrent use by
// several Run calls.
type Program struct {
	// Kinds are run by name beside the built-in ones, which they may
	// replace by using the same name.
	Kinds []kinds.Def

	// onListen, when set (by tests), is told the HTTP and NATS addresses
	// serve listens on.
	onListen func(httpAddr, natsURL string)
}

// Main runs the program with the kinds ks beside the built-in ones, on the
// process's arguments, and exits with its status. SIGINT and SIGTERM end
// serve and worker gracefully.
func Main(ks ...kinds.Def) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := (&Program{Kinds: ks}).Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Run runs the stock program's command args (without the program name)
// and returns its exit status.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return (&Program{}).Run(ctx, args, stdin, stdout, stderr)
}

type env struct {
	p      *Program
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	name, summary string
	run           func(ctx context.Context, e *env, args []string) int
}

func commands() []command {
	return []command{
		{"demo", "see it work: simulated market data, consistent snapshots, calculations through the queue", demoCmd},
		{"serve", "run the server: embedded NATS (or a cluster), the HTTP API, built-in workers", serve},
		{"worker", "run workers for the server's queues, from any machine that reaches NATS", worker},
		{"submit", "submit a batch and print its results in input order", submit},
		{"batch", "get, attach to or cancel a batch by ID", batchCmd},
		{"dead", "list, show or redrive dead letters", deadCmd},
		{"queues", "list queues with their depth and whether paused; pause or resume one; show the controls", queuesCmd},
		{"kinds", "list the kinds this program runs", kindsCmd},
		{"feed", "replay captured exchange feeds into consistent snapshots (feed replay)", feedCmd},
	}
}

// Run runs the command args (without the program name) and returns its
// exit status.
func (p *Program) Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{p: p, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		e.usage(stderr)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	fmt.Fprintf(stderr, "gather: unknown command %q\n\n", args[0])
	e.usage(stderr)
	return ExitUsage
}

func (e *env) usage(w io.Writer) {
	fmt.Fprintln(w, "gather collects asynchronously produced data synchronously: a task queue whose producers await whole batches.")
	fmt.Fprintln(w, "\nusage: gather <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"gather <command> --help\" for a command's flags and an example.")
	fmt.Fprintln(w, "\nexample:\n  gather serve --data ./gather-data &\n  printf '\"a\"\\n\"b\"\\n' | gather submit --kind echo")
}

// allKinds returns the built-in kinds and the program's, the program's
// replacing built-ins of the same name.
func (e *env) allKinds(cfg kinds.Config) []kinds.Def {
	out := kinds.Builtin(cfg)
	for _, k := range e.p.Kinds {
		if i := slices.IndexFunc(out, func(d kinds.Def) bool { return d.Name == k.Name }); i >= 0 {
			out[i] = k
		} else {
			out = append(out, k)
		}
	}
	return out
}

// flagSet returns a FlagSet for a command whose --help prints the usage
// line, the example and the flags.
func (e *env) flagSet(name, usage, example string) *flag.FlagSet {
	fs := flag.NewFlagSet("gather "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: gather %s %s\n\nexample:\n%s\n\nflags:\n", name, usage, example)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args; ok is false with the exit status when the command
// should stop (help: 0, bad flags: 2).
func parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, false
		}
		return ExitUsage, false
	}
	return 0, true
}

// envDefault returns the environment variable's value, or def.
func envDefault(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// stringVar defines a string flag whose default comes from the
// environment variable env when set.
func stringVar(fs *flag.FlagSet, p *string, name, env, def, usage string) {
	fs.StringVar(p, name, envDefault(env, def), usage+" (env "+env+")")
}

// secretVar is stringVar for secrets: the default is never printed.
func secretVar(fs *flag.FlagSet, p *string, name, env, usage string) {
	*p = os.Getenv(env)
	fs.Var((*secret)(p), name, usage+" (env "+env+")")
}

type secret string

func (s *secret) String() string {
	if s == nil || *s == "" {
		return ""
	}
	return "(set)"
}
func (s *secret) Set(v string) error { *s = secret(v); return nil }

// listFlag is a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = nil
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// logFlags are every long-running command's log flags.
type logFlags struct{ format, level string }

func (l *logFlags) add(fs *flag.FlagSet) {
	stringVar(fs, &l.format, "log-format", "GATHER_LOG_FORMAT", "text", "log format: text or json")
	stringVar(fs, &l.level, "log-level", "GATHER_LOG_LEVEL", "info", "log level: debug, info, warn or error")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) { return l.loggerAt(w, slog.LevelDebug) }

// loggerAt is logger with the level at least floor.
func (l *logFlags) loggerAt(w io.Writer, floor slog.Level) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", l.level)
	}
	lv = max(lv, floor)
	opts := &slog.HandlerOptions{Level: lv}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", l.format)
}

// usageErr prints a usage error and returns ExitUsage.
func (e *env) usageErr(cmd string, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "gather %s: %s\n", cmd, fmt.Sprintf(format, args...))
	return ExitUsage
}

func kindsCmd(ctx context.Context, e *env, args []string) int {
	fs := e.flagSet("kinds", "", "  gather kinds")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	for _, k := range e.allKinds(kinds.Config{}) {
		fmt.Fprintf(e.stdout, "%-8s %s\n", k.Name, k.Doc)
	}
	return ExitOK
}

// durationOK checks a duration flag: between lo and hi.
func durationOK(name string, d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return fmt.Errorf("--%s %v: want %v to %v", name, d, lo, hi)
	}
	return nil
}

func itoa(n int) string { return strconv.Itoa(n) }
