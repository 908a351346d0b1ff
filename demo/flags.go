package demo

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gather-go/gather/marketsim"
)

// options are the parsed flags.
type options struct {
	seed     uint64
	venues   int
	symbols  int
	rate     int
	interval time.Duration
	duration time.Duration
	show     int
	workers  int
	plain    bool
}

const usageText = `Usage: gather demo [flags]

Simulated market data venues stream quotes over an embedded NATS server; a
snapshot feed cuts consistent snapshots of them; on every cut, each symbol's
consolidated best bid and offer is computed through the task queue, and the
results are gathered back in symbol order. Nothing to install; the data lives
in a temporary directory, removed at exit.

Example:
  gather demo --venues 4 --symbols 300 --interval 100ms --duration 30s --seed 7

Flags:
`

func parse(args []string, stderr io.Writer) (options, int, bool) {
	o := options{seed: 1, venues: 4, symbols: 300, rate: 2000, interval: 100 * time.Millisecond, duration: 10 * time.Second, show: 6, workers: 2}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Uint64Var(&o.seed, "seed", o.seed, "random seed: the same seed gives the same quotes, losses, delays and silences")
	fs.IntVar(&o.venues, "venues", o.venues, fmt.Sprintf("venues quoting, 1 to %d (the 2nd loses quotes, the 3rd goes silent, the 4th sends some late)", marketsim.MaxVenues))
	fs.IntVar(&o.symbols, "symbols", o.symbols, "symbols quoted, 1 to 100000")
	fs.IntVar(&o.rate, "rate", o.rate, "quotes each venue sends a second")
	fs.DurationVar(&o.interval, "interval", o.interval, "time between cuts, 10ms to 1m")
	fs.DurationVar(&o.duration, "duration", o.duration, "how long to run; 0 runs until interrupted")
	fs.IntVar(&o.show, "show", o.show, "symbols shown in the live view")
	fs.IntVar(&o.workers, "workers", o.workers, "tasks the in-process queue worker runs at once")
	fs.BoolVar(&o.plain, "plain", o.plain, "print plain lines even on a terminal")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, ExitOK, false
		}
		return o, ExitUsage, false
	}
	var errs []string
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Sprintf("unexpected argument %q: demo takes flags only", fs.Arg(0)))
	}
	if o.interval < 10*time.Millisecond || o.interval > time.Minute {
		errs = append(errs, fmt.Sprintf("--interval %v: want 10ms to 1m", o.interval))
	}
	if o.duration < 0 {
		errs = append(errs, fmt.Sprintf("--duration %v: want 0 (until interrupted) or more", o.duration))
	}
	if o.show < 0 {
		errs = append(errs, fmt.Sprintf("--show %d: want 0 or more", o.show))
	}
	if o.workers < 1 || o.workers > 1024 {
		errs = append(errs, fmt.Sprintf("--workers %d: want 1 to 1024", o.workers))
	}
	// marketsim takes zero for its default; here zero is a mistake.
	for _, f := range []struct {
		name string
		v    int
	}{{"venues", o.venues}, {"symbols", o.symbols}, {"rate", o.rate}} {
		if f.v < 1 {
			errs = append(errs, fmt.Sprintf("--%s %d: want 1 or more", f.name, f.v))
		}
	}
	mc := o.marketConfig()
	mc.Venues, mc.Symbols, mc.Rate = max(mc.Venues, 1), max(mc.Symbols, 1), max(mc.Rate, 1) // reported above
	if _, err := marketsim.NewScript(mc); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			errs = append(errs, flagName(line))
		}
	}
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(stderr, "gather demo:", e)
		}
		fmt.Fprintln(stderr, "Run 'gather demo --help' for usage.")
		return o, ExitUsage, false
	}
	return o, ExitOK, true
}

// flagName rewrites a marketsim config error in the demo's flag names.
func flagName(msg string) string {
	msg = strings.TrimPrefix(msg, "marketsim: ")
	for _, r := range [][2]string{{"Venues is", "--venues"}, {"Symbols is", "--symbols"}, {"Rate is", "--rate"}} {
		msg = strings.Replace(msg, r[0], r[1], 1)
	}
	return msg
}

func (o options) marketConfig() *marketsim.Config {
	return &marketsim.Config{Seed: o.seed, Venues: o.venues, Symbols: o.symbols, Rate: o.rate}
}
