// Command brokertable turns the output of BenchmarkBroker (bench/brokers_test.go) into the
// Markdown tables of BENCHMARKS.md, with ratios against the raw JetStream ceiling and the
// peers, and a check of issue 4's goals. bench/brokers.sh runs it.
//
//	go test -run '^$' -bench Broker | go run ./cmd/brokertable [-stat median|min]
//
// When a sub-benchmark ran more than once (-count, or several rounds), each figure is the
// median of its runs, or with -stat min the best (the smallest latency, the largest
// throughput: the least disturbed by other load on a shared machine).
package main

import (
	"bufio"
	"cmp"
	"flag"
	"fmt"
	"github.com/gather-go/gather/bench/internal/md"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var (
	lineRE  = regexp.MustCompile(`^BenchmarkBroker/impl=([^/\s]+)/(throughput|await/n=(\d+))(?:-\d+)?\s+(\d+)\s+(.*)$`)
	chunkRE = regexp.MustCompile(`-broker-chunk=(\d+)`)
)

// key is one sub-benchmark: n is 0 for throughput.
type key struct {
	impl string
	n    int
}

type table struct {
	impls   []string // in order of first appearance
	ns      []int    // await batch sizes
	chunk   string   // the throughput chunk, if the output says
	iters   map[key][]float64
	samples map[key]map[string][]float64 // unit (tasks/s, p50-ms, ...) to its values over runs
}

func parse(r io.Reader) (*table, error) {
	t := &table{iters: map[key][]float64{}, samples: map[key]map[string][]float64{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			if m := chunkRE.FindStringSubmatch(line); m != nil {
				t.chunk = m[1]
			}
			continue
		}
		m := lineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		k := key{impl: m[1]}
		if m[3] != "" {
			k.n, _ = strconv.Atoi(m[3])
			if !slices.Contains(t.ns, k.n) {
				t.ns = append(t.ns, k.n)
			}
		}
		if !slices.Contains(t.impls, k.impl) {
			t.impls = append(t.impls, k.impl)
		}
		if t.samples[k] == nil {
			t.samples[k] = map[string][]float64{}
		}
		iters, _ := strconv.ParseFloat(m[4], 64)
		t.iters[k] = append(t.iters[k], iters)
		f := strings.Fields(m[5])
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				t.samples[k][f[i+1]] = append(t.samples[k][f[i+1]], v)
			}
		}
	}
	slices.Sort(t.ns)
	return t, sc.Err()
}

// get returns the median (or best) of a unit's samples, or NaN.
func (t *table) get(impl string, n int, unit string) float64 {
	return md.Summary(t.samples[key{impl, n}][unit], unit == "tasks/s")
}

const (
	ours    = "natsbroker"
	ceiling = "jetstream"
)

func (t *table) write(w io.Writer) {
	runs := 0
	for _, s := range t.iters {
		runs = max(runs, len(s))
	}
	fmt.Fprintf(w, "Each figure is the %s of %d run(s). A missing row did not run (its server not configured, or it failed).\n", *md.Stat, runs)
	fmt.Fprintln(w, "Shape: in-process for natsbroker and raw JetStream (embedded server, producer and worker in one")
	fmt.Fprintln(w, "process, on in-process connections); asynq and River over loopback TCP to their servers.")

	chunk := "a chunk"
	if t.chunk != "" {
		c, _ := strconv.ParseInt(t.chunk, 10, 64)
		chunk = "chunks of " + md.Group(c)
	}
	fmt.Fprintf(w, "\n**Throughput**: no-op tasks executed and acknowledged per second, enqueued in %s\n", chunk)
	fmt.Fprintln(w, "and waited for until the broker has recorded every acknowledgement (natsbroker: an awaited")
	fmt.Fprintf(w, "batch, so with its results too). ÷ %s: this row's tasks/s ÷ the raw JetStream ceiling's;\n", ceiling)
	fmt.Fprintf(w, "%s ÷: %s's tasks/s ÷ this row's, i.e. how many times faster %s is.\n\n", ours, ours, ours)
	fmt.Fprintf(w, "| impl | tasks/s | ÷ %s | %s ÷ |\n|---|--:|--:|--:|\n", ceiling, ours)
	for _, impl := range t.impls {
		v := t.get(impl, 0, "tasks/s")
		if math.IsNaN(v) {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", impl, md.Num(v),
			md.Ratio(v/t.get(ceiling, 0, "tasks/s")), md.Ratio(t.get(ours, 0, "tasks/s")/v))
	}

	if len(t.ns) == 0 {
		return
	}
	fmt.Fprintln(w, "\n**Await a batch**: wall time from enqueueing N no-op tasks to the producer knowing that")
	fmt.Fprintln(w, "every one finished (asynq and River: by polling, as their docs advise), p50 / p99 in ms over")
	fmt.Fprintln(w, "the iterations (iterations in parentheses: with fewer than 100, p99 is the worst).")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| impl |")
	for _, n := range t.ns {
		fmt.Fprintf(w, " N = %s |", md.Group(int64(n)))
	}
	fmt.Fprint(w, "\n|---|")
	fmt.Fprintln(w, strings.Repeat("--:|", len(t.ns)))
	for _, impl := range t.impls {
		fmt.Fprintf(w, "| %s |", impl)
		for _, n := range t.ns {
			p50, p99 := t.get(impl, n, "p50-ms"), t.get(impl, n, "p99-ms")
			if math.IsNaN(p50) {
				fmt.Fprint(w, " – |")
				continue
			}
			iters := slices.Min(t.iters[key{impl, n}])
			fmt.Fprintf(w, " %s / %s (%s) |", md.Num(p50), md.Num(p99), md.Group(int64(iters)))
		}
		fmt.Fprintln(w)
	}
}

// goals prints issue 4's goals against the figures.
func (t *table) goals(w io.Writer) {
	fmt.Fprintln(w, "\nGoals (issue 4):")
	tp := func(impl string) float64 { return t.get(impl, 0, "tasks/s") }
	r := tp(ours) / tp(ceiling)
	fmt.Fprintf(w, "  %s throughput %s the raw JetStream ceiling's (goal ≥ 0.7×): %s\n", ours, md.Ratio(r), md.Verdict(r >= 0.7, r))
	for _, p := range []struct {
		impl string
		goal float64
	}{{"asynq", 8}, {"river", 4}} {
		r := tp(ours) / tp(p.impl)
		fmt.Fprintf(w, "  %s throughput %s %s's (goal ≥ %g×): %s\n", ours, md.Ratio(r), p.impl, p.goal, md.Verdict(r >= p.goal, r))
	}
	if u := tp(ours + "-unpacked"); !math.IsNaN(u) {
		fmt.Fprintf(w, "  (one task per message, PackSize 1: %s the ceiling's, %s asynq's, %s river's)\n",
			md.Ratio(u/tp(ceiling)), md.Ratio(u/tp("asynq")), md.Ratio(u/tp("river")))
	}
	v := t.get(ours, 1000, "p50-ms")
	fmt.Fprintf(w, "  %s awaiting 1,000 tasks: p50 %s ms (goal < 15 ms; raw JetStream: %s ms): %s\n",
		ours, md.Num(v), md.Num(t.get(ceiling, 1000, "p50-ms")), md.Verdict(v < 15, v))
	v = t.get(ours, 1, "p50-ms") * 1000
	fmt.Fprintf(w, "  %s single task round trip: p50 %s µs (goal < 200 µs; raw JetStream: %s µs): %s\n",
		ours, md.Num(v), md.Num(t.get(ceiling, 1, "p50-ms")*1000), md.Verdict(v < 200, v))
}

func main() {
	flag.Parse()
	if err := md.CheckStat(); err != nil {
		fmt.Fprintln(os.Stderr, "brokertable:", err)
		os.Exit(2)
	}
	t, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "brokertable:", err)
		os.Exit(1)
	}
	if len(t.impls) == 0 {
		fmt.Fprintln(os.Stderr, "brokertable: no BenchmarkBroker lines on standard input")
		os.Exit(1)
	}
	slices.SortStableFunc(t.impls, func(a, b string) int { return cmp.Compare(rank(a), rank(b)) })
	t.write(os.Stdout)
	t.goals(os.Stdout)
}

// rank puts gather's broker first (packed, then unpacked), then the ceiling, then the
// peers.
func rank(impl string) int {
	if i := slices.Index([]string{ours, ours + "-unpacked", ceiling, "asynq", "river"}, impl); i >= 0 {
		return i
	}
	return 99
}
