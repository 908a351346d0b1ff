// Command table turns the output of BenchmarkFanout (and of asyncio_gather.py, which
// prints the same form) into the Markdown tables of BENCHMARKS.md, with ratios against
// the floor and the peers, and a check of issue 2's goals.
//
//	go test -run '^$' -bench Fanout | go run ./cmd/table [-stat median|min]
//
// When a sub-benchmark ran more than once (-count, or several rounds), each figure is the
// median of its runs, or with -stat min the smallest (the least disturbed by other load
// on a shared machine).
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

var lineRE = regexp.MustCompile(`^BenchmarkFanout/n=(\d+)/impl=(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// key is one sub-benchmark; samples maps a unit (ns/task, ...) to its values over runs.
type key struct {
	n    int
	impl string
}

type table struct {
	ns      []int
	impls   []string // in order of first appearance
	samples map[key]map[string][]float64
}

func parse(r io.Reader) (*table, error) {
	t := &table{samples: map[key]map[string][]float64{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := lineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		k := key{n, m[2]}
		if !slices.Contains(t.ns, n) {
			t.ns = append(t.ns, n)
		}
		if !slices.Contains(t.impls, k.impl) {
			t.impls = append(t.impls, k.impl)
		}
		if t.samples[k] == nil {
			t.samples[k] = map[string][]float64{}
		}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				t.samples[k][f[i+1]] = append(t.samples[k][f[i+1]], v)
			}
		}
	}
	slices.Sort(t.ns)
	return t, sc.Err()
}

// get returns the median (or minimum) of a unit's samples, or NaN.
func (t *table) get(n int, impl, unit string) float64 {
	return md.Summary(t.samples[key{n, impl}][unit], false)
}

// limited says whether impl runs at most 8 tasks at once, so that it is compared with the
// limited floor and peers.
func limited(impl string) bool { return strings.HasSuffix(impl, "8") }

// peer returns the name of the floor or peer that impl is compared with.
func peer(base, impl string) string {
	if base == "asyncio.gather" {
		return base
	}
	if limited(impl) {
		if base == "floor" {
			return "floor.chunks8"
		}
		return base + ".limit8"
	}
	if base == "floor" {
		return "floor.goroutines"
	}
	return base
}

func (t *table) write(w io.Writer) {
	peers := []string{"errgroup", "conc", "pond", "asyncio.gather"}
	runs := len(t.samples[key{t.ns[0], t.impls[0]}]["ns/task"])
	fmt.Fprintf(w, "Each figure is the %s of %d run(s).\n", *md.Stat, runs)
	fmt.Fprintln(w, "ns/task: wall time per task; allocs/task and B/task: heap allocations per task")
	fmt.Fprintln(w, "(runtime.MemStats deltas over the timed loop ÷ tasks). vs floor: ns/task ÷ the floor's")
	fmt.Fprintln(w, "(floor.goroutines, or floor.chunks8 for the rows limited to 8); peer ÷: the peer's ns/task ÷")
	fmt.Fprintln(w, "this row's, i.e. how many times faster this row is (the .limit8 peer for limited rows).")
	for _, n := range t.ns {
		fmt.Fprintf(w, "\n**N = %s tasks**\n\n", md.Group(int64(n)))
		fmt.Fprint(w, "| impl | ns/task | allocs/task | B/task | vs floor |")
		for _, p := range peers {
			fmt.Fprintf(w, " %s ÷ |", strings.TrimSuffix(p, ".gather"))
		}
		fmt.Fprint(w, "\n|---|--:|--:|--:|--:|")
		fmt.Fprintln(w, strings.Repeat("--:|", len(peers)))
		for _, impl := range t.impls {
			ns := t.get(n, impl, "ns/task")
			if math.IsNaN(ns) {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |", impl, md.Num(ns),
				md.Num(t.get(n, impl, "allocs/task")), md.Num(t.get(n, impl, "B/task")),
				md.Ratio(ns/t.get(n, peer("floor", impl), "ns/task")))
			for _, p := range peers {
				fmt.Fprintf(w, " %s |", md.Ratio(t.get(n, peer(p, impl), "ns/task")/ns))
			}
			fmt.Fprintln(w)
		}
	}
}

// goals prints issue 2's goals against the figures.
func (t *table) goals(w io.Writer) {
	fmt.Fprintln(w, "\nGoals (issue 2):")
	for _, n := range t.ns {
		ns := func(impl string) float64 { return t.get(n, impl, "ns/task") }
		fmt.Fprintf(w, "N=%s:\n", md.Group(int64(n)))
		for _, impl := range []string{"gather.All", "gather.Settled"} {
			r := ns(impl) / ns("floor.goroutines")
			fmt.Fprintf(w, "  %-18s %.3f× the floor's ns/task (goal ≤ 1.15×): %s\n", impl, r, md.Verdict(r <= 1.15, r))
		}
		if r := ns("gather.Settled") / ns("floor.goroutines.results"); !math.IsNaN(r) {
			fmt.Fprintf(w, "  %-18s %.3f× floor.goroutines.results (the floor writing 24-byte Results)\n", "gather.Settled", r)
		}
		m := "gather.Map.limit8"
		r := ns("errgroup.limit8") / ns(m)
		fmt.Fprintf(w, "  %-18s %s faster than errgroup.limit8 (goal ≥ 20×): %s\n", m, md.Ratio(r), md.Verdict(r >= 20, r))
		allocs := t.get(n, m, "allocs/task") * float64(n)
		extra := (t.get(n, m, "B/task") - 8) * float64(n) // the []int result slice: 8 B a task
		fmt.Fprintf(w, "  %-18s %s allocs and %s B a call beyond the result slice (goal: nothing per task)\n",
			m, md.Num(allocs), md.Num(math.Max(extra, 0)))
		for _, impl := range []string{"gather.All", "gather.Map.limit8"} {
			r := ns("asyncio.gather") / ns(impl)
			fmt.Fprintf(w, "  %-18s %s faster than asyncio.gather (goal ≥ 20×): %s\n", impl, md.Ratio(r), md.Verdict(r >= 20, r))
		}
	}
}

func main() {
	flag.Parse()
	if err := md.CheckStat(); err != nil {
		fmt.Fprintln(os.Stderr, "table:", err)
		os.Exit(2)
	}
	t, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "table:", err)
		os.Exit(1)
	}
	if len(t.ns) == 0 {
		fmt.Fprintln(os.Stderr, "table: no BenchmarkFanout lines on standard input")
		os.Exit(1)
	}
	slices.SortStableFunc(t.impls, func(a, b string) int { return cmp.Compare(rank(a), rank(b)) })
	t.write(os.Stdout)
	t.goals(os.Stdout)
}

// rank puts the floors first, then gather, then the peers, in order of appearance.
func rank(impl string) int {
	for i, p := range []string{"floor.", "gather.", "errgroup", "conc", "pond", "ants", "asyncio"} {
		if strings.HasPrefix(impl, p) {
			return i
		}
	}
	return 99
}
