// Command deployedtable turns the output of bench/cmd/deployed (JSON lines, one per
// measurement) into the Markdown tables of BENCHMARKS.md for the deployed shape, with
// ratios against the peers measured in the same run and issue 10's goals as verdicts.
// bench/deployed.sh runs it.
//
//	go run ./cmd/deployedtable [-stat median|min] <last-deployed.out
//
// When a measurement ran in several rounds, each figure is the median of its rounds,
// or with -stat min the best. When the input holds a run at half speed
// (deployed.sh --half) as well as one at full speed, each gets its tables, and the
// "no cliff" goal compares every goal's ratio between the two.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/gather-go/gather/bench/internal/md"
)

// line is one measurement as the producers print it and the driver completes it.
type line struct {
	System  string  `json:"system"`
	Op      string  `json:"op"`
	N       int     `json:"n"`
	Iters   int     `json:"iters"`
	TasksS  float64 `json:"tasks_per_s"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	Shape   string  `json:"shape"`
	Workers int     `json:"workers"`
	Speed   string  `json:"speed"`
}

// key is one measurement; n is 0 for throughput.
type key struct {
	speed   string
	system  string
	workers int
	n       int
}

type table struct {
	speeds  []string // in order of appearance
	systems []string
	workers []int
	ns      []int // await sizes
	chunk   int
	shape   map[string]string
	samples map[key]map[string][]float64 // unit to its values over rounds
	failed  []string
}

func parse(r io.Reader) (*table, error) {
	t := &table{shape: map[string]string{}, samples: map[key]map[string][]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for no := 1; sc.Scan(); no++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		if strings.HasPrefix(text, "#") {
			if strings.Contains(text, "FAILED") {
				t.failed = append(t.failed, strings.TrimSpace(strings.TrimPrefix(text, "#")))
			}
			continue
		}
		var l line
		if err := json.Unmarshal([]byte(text), &l); err != nil {
			return nil, fmt.Errorf("line %d: %v: want a JSON object of bench/cmd/deployed or a # comment", no, err)
		}
		if l.System == "" || l.Workers < 1 || l.N < 1 || (l.Op != "await" && l.Op != "throughput") {
			return nil, fmt.Errorf("line %d: want system, workers, n and op (await or throughput): %s", no, text)
		}
		if l.Speed == "" {
			l.Speed = "full"
		}
		add := func(s []string, v string) []string {
			if !slices.Contains(s, v) {
				s = append(s, v)
			}
			return s
		}
		t.speeds = add(t.speeds, l.Speed)
		t.systems = add(t.systems, l.System)
		if !slices.Contains(t.workers, l.Workers) {
			t.workers = append(t.workers, l.Workers)
		}
		t.shape[l.System] = l.Shape
		k := key{l.Speed, l.System, l.Workers, l.N}
		if l.Op == "throughput" {
			k.n, t.chunk = 0, l.N
		} else if !slices.Contains(t.ns, l.N) {
			t.ns = append(t.ns, l.N)
		}
		if t.samples[k] == nil {
			t.samples[k] = map[string][]float64{}
		}
		s := t.samples[k]
		s["tasks/s"] = append(s["tasks/s"], l.TasksS)
		s["p50"] = append(s["p50"], l.P50ms)
		s["p99"] = append(s["p99"], l.P99ms)
		s["iters"] = append(s["iters"], float64(l.Iters))
	}
	slices.Sort(t.workers)
	slices.Sort(t.ns)
	slices.SortStableFunc(t.speeds, func(a, b string) int { return cmp.Compare(speedRank(a), speedRank(b)) })
	slices.SortStableFunc(t.systems, func(a, b string) int { return cmp.Compare(rank(a), rank(b)) })
	return t, sc.Err()
}

const (
	ours     = "natsbroker"
	ceiling  = "jetstream"
	inproc   = "natsbroker-inprocess"
	unpacked = "natsbroker-unpacked"
)

// rank orders the rows: gather's broker (packed, unpacked, in-process), the raw
// JetStream ceiling, then the peers.
func rank(system string) int {
	if i := slices.Index([]string{ours, unpacked, inproc, ceiling, "asynq", "river", "bullmq", "celery"}, system); i >= 0 {
		return i
	}
	return 99
}

func speedRank(s string) int {
	if s == "full" {
		return 0
	}
	return 1
}

// get returns the median (or best) of a unit's samples, or NaN. n is 0 for
// throughput.
func (t *table) get(speed, system string, w, n int, unit string) float64 {
	return md.Summary(t.samples[key{speed, system, w, n}][unit], unit == "tasks/s")
}

func (t *table) label(system string) string {
	if t.shape[system] == "in-process" {
		return system + " (in-process)"
	}
	return system
}

func plural(w int) string {
	if w == 1 {
		return "1 worker"
	}
	return fmt.Sprintf("%d workers", w)
}

func (t *table) write(w io.Writer, speed string) {
	chunk := "a batch"
	if t.chunk > 0 {
		chunk = "batches of " + md.Group(int64(t.chunk))
	}
	fmt.Fprintf(w, "\n**Throughput**: no-op tasks per second, enqueued in %s, each batch awaited until the\n", chunk)
	fmt.Fprintf(w, "producer knows every result, one batch after another. ÷ %s: this row's tasks/s ÷ raw JetStream's\n", ceiling)
	fmt.Fprintf(w, "with as many workers; %s ÷: %s's tasks/s ÷ this row's (how many times faster %s is).\n\n", ours, ours, ours)
	fmt.Fprint(w, "| system |")
	for _, wk := range t.workers {
		fmt.Fprintf(w, " %s: tasks/s | ÷ %s | %s ÷ |", plural(wk), ceiling, ours)
	}
	fmt.Fprint(w, "\n|---|")
	fmt.Fprintln(w, strings.Repeat("--:|", 3*len(t.workers)))
	for _, s := range t.systems {
		fmt.Fprintf(w, "| %s |", t.label(s))
		for _, wk := range t.workers {
			v := t.get(speed, s, wk, 0, "tasks/s")
			fmt.Fprintf(w, " %s | %s | %s |", md.Num(v),
				md.Ratio(v/t.get(speed, ceiling, wk, 0, "tasks/s")), md.Ratio(t.get(speed, ours, wk, 0, "tasks/s")/v))
		}
		fmt.Fprintln(w)
	}

	if len(t.ns) == 0 {
		return
	}
	fmt.Fprintln(w, "\n**Await a batch**: wall time from enqueueing N no-op tasks to the producer knowing that every")
	fmt.Fprintln(w, "one finished (N = 1: a lone task's round trip), p50 / p99 in ms over the iterations")
	fmt.Fprintln(w, "(iterations in parentheses: with fewer than 100, p99 is the slowest).")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| system |")
	for _, n := range t.ns {
		for _, wk := range t.workers {
			fmt.Fprintf(w, " N = %s, %s |", md.Group(int64(n)), plural(wk))
		}
	}
	fmt.Fprint(w, "\n|---|")
	fmt.Fprintln(w, strings.Repeat("--:|", len(t.ns)*len(t.workers)))
	for _, s := range t.systems {
		fmt.Fprintf(w, "| %s |", t.label(s))
		for _, n := range t.ns {
			for _, wk := range t.workers {
				p50, p99 := t.get(speed, s, wk, n, "p50"), t.get(speed, s, wk, n, "p99")
				if math.IsNaN(p50) {
					fmt.Fprint(w, " – |")
					continue
				}
				iters := slices.Min(t.samples[key{speed, s, wk, n}]["iters"])
				fmt.Fprintf(w, " %s / %s (%s) |", md.Num(p50), md.Num(p99), md.Group(int64(iters)))
			}
		}
		fmt.Fprintln(w)
	}
}

// goal is one of issue 10's goals, as a ratio of two figures of one speed and
// worker count, and the bound that ratio must keep.
type goal struct {
	text   string
	ratio  func(t *table, speed string, w int) float64
	bound  float64
	atMost bool // the ratio must be at most bound (else at least)
}

func (g goal) met(r float64) bool {
	if g.atMost {
		return r <= g.bound
	}
	return r >= g.bound
}

func throughputOver(peer string, bound float64) goal {
	return goal{
		text: fmt.Sprintf("%s throughput ÷ %s's (goal ≥ %g×)", ours, peer, bound),
		ratio: func(t *table, speed string, w int) float64 {
			return t.get(speed, ours, w, 0, "tasks/s") / t.get(speed, peer, w, 0, "tasks/s")
		},
		bound: bound,
	}
}

func latencyOver(n int, bound float64) goal {
	what := fmt.Sprintf("awaiting %s tasks", md.Group(int64(n)))
	if n == 1 {
		what = "a lone task's round trip"
	}
	return goal{
		text: fmt.Sprintf("%s, p50 ÷ raw JetStream's (goal ≤ %g×)", what, bound),
		ratio: func(t *table, speed string, w int) float64 {
			return t.get(speed, ours, w, n, "p50") / t.get(speed, ceiling, w, n, "p50")
		},
		bound:  bound,
		atMost: true,
	}
}

var goals = []goal{
	throughputOver(ceiling, 2),
	throughputOver("asynq", 10),
	throughputOver("river", 5),
	throughputOver("bullmq", 10),
	throughputOver("celery", 100),
	latencyOver(1000, 1),
	latencyOver(1, 1.5),
	{
		text: fmt.Sprintf("%s throughput over TCP ÷ in-process (goal ≥ 0.5×)", ours),
		ratio: func(t *table, speed string, w int) float64 {
			return t.get(speed, ours, w, 0, "tasks/s") / t.get(speed, inproc, w, 0, "tasks/s")
		},
		bound: 0.5,
	},
}

// cliff is how far a ratio at half speed may move from the one at full speed
// against its goal: a throughput ratio may fall, a latency ratio rise, by at most
// this much. A ratio that moves towards its goal is no cliff, however far it
// moves (a lone round trip that gains on raw JetStream's at half speed is
// reported, not counted against the goal).
const cliff = 0.25

// worse reports how far a ratio moved against g from full to half (a fraction of
// the full-speed ratio; negative when it moved towards the goal).
func (g goal) worse(full, half float64) float64 {
	if g.atMost {
		return half/full - 1
	}
	return 1 - half/full
}

func (t *table) goals(w io.Writer) {
	fmt.Fprintln(w, "\nGoals (issue 10), ratios within one run and one worker count:")
	for _, speed := range t.speeds {
		for _, wk := range t.workers {
			fmt.Fprintf(w, "  %s speed, %s:\n", speed, plural(wk))
			for _, g := range goals {
				r := g.ratio(t, speed, wk)
				fmt.Fprintf(w, "    %s: %s: %s\n", g.text, md.Ratio(r), md.Verdict(g.met(r), r))
			}
		}
	}
	if !slices.Contains(t.speeds, "full") || !slices.Contains(t.speeds, "half") {
		fmt.Fprintln(w, "  no cliff: not measured (bench/deployed.sh --half measures it)")
		return
	}
	fmt.Fprintf(w, "  no cliff: no ratio at half speed more than %g%% worse than the same at full speed (towards its goal is better):\n", cliff*100)
	for _, wk := range t.workers {
		for _, g := range goals {
			full, half := g.ratio(t, "full", wk), g.ratio(t, "half", wk)
			d, change := half/full-1, "–"
			if !math.IsNaN(d) && !math.IsInf(d, 0) {
				change = fmt.Sprintf("%+.0f%%", d*100)
			}
			fmt.Fprintf(w, "    %s, %s: %s at full, %s at half (%s): %s\n", g.text, plural(wk),
				md.Ratio(full), md.Ratio(half), change, md.Verdict(g.worse(full, half) <= cliff, d))
		}
	}
}

func main() {
	flag.Parse()
	if err := md.CheckStat(); err != nil {
		fmt.Fprintln(os.Stderr, "deployedtable:", err)
		os.Exit(2)
	}
	t, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deployedtable:", err)
		os.Exit(1)
	}
	if len(t.systems) == 0 {
		fmt.Fprintln(os.Stderr, "deployedtable: no results of bench/cmd/deployed on standard input")
		os.Exit(1)
	}
	runs := 0
	for _, s := range t.samples {
		runs = max(runs, len(s["iters"]))
	}
	fmt.Printf("Each figure is the %s of %d round(s). A missing figure did not run (see the failures below).\n", *md.Stat, runs)
	for _, speed := range t.speeds {
		if len(t.speeds) > 1 {
			fmt.Printf("\n### At %s speed\n", speed)
		}
		t.write(os.Stdout, speed)
	}
	t.goals(os.Stdout)
	for _, f := range t.failed {
		fmt.Println("\n" + f)
	}
}
