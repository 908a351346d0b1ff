package chaos

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Report is what Check found in a history. The run passed when OK: nothing
// lost, nothing wrong, no duplicated or missing index, no hang, and no task
// over its bound on executions.
type Report struct {
	Batches         int            // batches accepted
	Rejected        int            // EnqueueBatch calls that returned an error
	Tasks           int            // tasks accepted
	FailByDesign    int            // of which fail by design (see FailInput)
	Faults          map[string]int // faults injected, by kind
	Observations    int            // awaits recorded
	AwaitErrors     int            // awaits that returned an error (retried by re-attaching)
	Lost            int            // accepted tasks no await returned a result for
	Wrong           int            // results with a wrong value, an error, a value no execution made, or two recorded results for one task
	DuplicatedIndex int            // indices an await returned twice
	MissingIndex    int            // indices missing from an await that returned without error
	Hangs           int            // awaits that had not ended by their deadline
	Executions      int            // executions started, of accepted tasks
	Duplicates      int            // executions beyond the first, of accepted tasks
	DuplicatesAfter map[string]int // Duplicates by the kind of the last fault before each (FaultNone: no fault since the enqueue)
	MaxRuns         int            // the most executions of one task
	OverBound       int            // tasks that ran more often than 1 + the faults during their life
	Late            int            // executions started after an await had returned the task's result
	RejectedRuns    int            // executions of tasks whose EnqueueBatch returned an error
	Phantom         int            // executions of inputs never enqueued
	Problems        []string       // the first problems of each kind, for the report
}

// OK reports whether the history kept every promise Check checks.
func (r *Report) OK() bool {
	return r.Lost == 0 && r.Wrong == 0 && r.DuplicatedIndex == 0 && r.MissingIndex == 0 &&
		r.Hangs == 0 && r.OverBound == 0 && r.Phantom == 0 && r.Tasks > 0
}

// FaultNone is the cause DuplicatesAfter gives a duplicate execution with no
// fault between its task's enqueue and its start.
const FaultNone = "none"

// maxProblems bounds the problems listed per kind.
const maxProblems = 10

func (r *Report) problem(kind string, count *int, format string, args ...any) {
	n := 0
	for _, p := range r.Problems {
		if strings.HasPrefix(p, kind+": ") {
			n++
		}
	}
	*count++
	if n < maxProblems {
		r.Problems = append(r.Problems, kind+": "+fmt.Sprintf(format, args...))
	}
}

// String formats the report as the table RELIABILITY.md shows, then the
// problems.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "batches accepted %d (%d enqueues refused), tasks accepted %d (%d failing by design), awaits %d (%d returned an error and were retried)\n",
		r.Batches, r.Rejected, r.Tasks, r.FailByDesign, r.Observations, r.AwaitErrors)
	var faults []string
	for _, k := range slices.Sorted(maps.Keys(r.Faults)) {
		if isKill(k) {
			faults = append(faults, fmt.Sprintf("%s %d", k, r.Faults[k]))
		}
	}
	fmt.Fprintf(&b, "faults: %s\n", strings.Join(faults, ", "))
	fmt.Fprintf(&b, "lost %d, wrong %d, duplicated index %d, missing index %d, hangs %d\n",
		r.Lost, r.Wrong, r.DuplicatedIndex, r.MissingIndex, r.Hangs)
	var after []string
	for _, k := range slices.Sorted(maps.Keys(r.DuplicatesAfter)) {
		after = append(after, fmt.Sprintf("%s %d", k, r.DuplicatesAfter[k]))
	}
	fmt.Fprintf(&b, "duplicate executions by the last fault before them: %s\n", strings.Join(after, ", "))
	fmt.Fprintf(&b, "executions %d, duplicate executions %d (max runs of one task %d, over the bound %d, after the result was seen %d), runs of refused enqueues %d, phantom runs %d\n",
		r.Executions, r.Duplicates, r.MaxRuns, r.OverBound, r.Late, r.RejectedRuns, r.Phantom)
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	return b.String()
}

// task is what Check knows of one accepted task.
type task struct {
	batch  *batchState
	index  int
	x      string // the execution whose result awaits returned
	starts []int64
	ends   map[string]bool // executions that ended
	seenAt int64           // when an await first returned its result (0: never)
}

type batchState struct {
	enq  Enqueue
	done bool // an await returned every result
}

// Check reads a history and reports every broken promise (see Report). It
// checks:
//
//   - every accepted task has a result in an await that returned without
//     error, its value is Expected(input) (or, for a task that fails by
//     design, its error is FailError), and it was made by an execution of
//     that task that ran to its end;
//   - every await that returned no error returned each index once, none
//     missing, none out of range (an error per task counts as wrong: the
//     workers' handler never fails);
//   - every await of a task returned the same result (the same execution):
//     one recorded result per task;
//   - no await hung;
//   - no task started more than 1 + k times, k being the faults (kills of a
//     worker, of the server or of a node) between its enqueue and its last
//     start; every execution is of an enqueued input.
func Check(h *History) *Report {
	r := &Report{Faults: map[string]int{}, DuplicatesAfter: map[string]int{}}
	var killFaults []Fault
	for _, f := range h.Faults {
		r.Faults[f.Kind]++
		if isKill(f.Kind) {
			killFaults = append(killFaults, f)
		}
	}
	slices.SortFunc(killFaults, func(a, b Fault) int { return cmp.Compare(a.T, b.T) })
	kills := make([]int64, len(killFaults))
	for i, f := range killFaults {
		kills[i] = f.T
	}

	// Inputs to tasks: accepted ranges, and refused ones.
	type span struct {
		lo, hi int64
		b      *batchState
	}
	var spans, refused []span
	batches := map[string]*batchState{}
	for _, e := range h.Enqueues {
		if e.Err != "" {
			r.Rejected++
			refused = append(refused, span{e.Base, e.Base + int64(e.N), nil})
			continue
		}
		if _, dup := batches[e.Batch]; dup || e.N <= 0 || e.Batch == "" {
			r.problem("wrong", &r.Wrong, "enqueue of batch %q with %d tasks recorded twice or malformed", e.Batch, e.N)
			continue
		}
		b := &batchState{enq: e}
		batches[e.Batch] = b
		spans = append(spans, span{e.Base, e.Base + int64(e.N), b})
		r.Batches++
		r.Tasks += e.N
		r.FailByDesign += len(e.Fail)
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	sort.Slice(refused, func(i, j int) bool { return refused[i].lo < refused[j].lo })
	find := func(s []span, in int64) (span, bool) {
		i := sort.Search(len(s), func(i int) bool { return s[i].hi > in })
		if i < len(s) && s[i].lo <= in {
			return s[i], true
		}
		return span{}, false
	}
	tasks := map[int64]*task{}
	taskOf := func(in int64) *task {
		t := tasks[in]
		if t == nil {
			sp, ok := find(spans, in)
			if !ok {
				return nil
			}
			t = &task{batch: sp.b, index: int(in - sp.lo), ends: map[string]bool{}}
			tasks[in] = t
		}
		return t
	}

	// Executions.
	for _, e := range h.Execs {
		if e.In < 0 {
			e.In = FailInput(e.In) // its own inverse
		}
		t := taskOf(e.In)
		switch {
		case t != nil && e.End:
			t.ends[e.X] = true
		case t != nil:
			t.starts = append(t.starts, e.T)
		case e.End:
		default:
			if _, ok := find(refused, e.In); ok {
				r.RejectedRuns++
			} else {
				r.problem("phantom", &r.Phantom, "input %d ran (execution %s) but was never enqueued", e.In, e.X)
			}
		}
	}

	// Observations.
	for _, o := range h.Observations {
		r.Observations++
		b := batches[o.Batch]
		if b == nil {
			r.problem("wrong", &r.Wrong, "%s of batch %q, which was never accepted", o.Mode, o.Batch)
			continue
		}
		if o.Hang {
			r.problem("hang", &r.Hangs, "%s of batch %s (%d tasks) had not ended after %.1fs: %s",
				o.Mode, o.Batch, b.enq.N, float64(o.End-o.Start)/1e9, o.Err)
			continue
		}
		if o.Err != "" {
			r.AwaitErrors++
			continue
		}
		n := b.enq.N
		seen := make([]bool, n)
		for _, s := range o.Results {
			if s.I < 0 || s.I >= n {
				r.problem("wrong", &r.Wrong, "%s of batch %s returned index %d of %d", o.Mode, o.Batch, s.I, n)
				continue
			}
			if seen[s.I] {
				r.problem("duplicated index", &r.DuplicatedIndex, "%s of batch %s returned index %d twice", o.Mode, o.Batch, s.I)
				continue
			}
			seen[s.I] = true
			in := b.enq.Base + int64(s.I)
			t := taskOf(in)
			fails := slices.Contains(b.enq.Fail, s.I)
			if fails {
				x, ok := failedBy(s.Err)
				if !ok {
					r.problem("wrong", &r.Wrong, "%s of batch %s: task %d should fail by design, but returned %d, %q", o.Mode, o.Batch, s.I, s.V, s.Err)
					continue
				}
				s.X, s.V = x, Expected(in) // checked below as a value: its execution, once
			}
			switch {
			case s.Err != "" && !fails:
				r.problem("wrong", &r.Wrong, "%s of batch %s: task %d failed: %s", o.Mode, o.Batch, s.I, s.Err)
				continue
			case s.V != Expected(in):
				r.problem("wrong", &r.Wrong, "%s of batch %s: task %d (input %d) = %d, want %d", o.Mode, o.Batch, s.I, in, s.V, Expected(in))
				continue
			case !t.ends[s.X]:
				r.problem("wrong", &r.Wrong, "%s of batch %s: task %d's result names execution %q, which did not run it to its end", o.Mode, o.Batch, s.I, s.X)
				continue
			case t.x != "" && t.x != s.X:
				r.problem("wrong", &r.Wrong, "%s of batch %s: task %d's result came from execution %s, an earlier await's from %s: two recorded results", o.Mode, o.Batch, s.I, s.X, t.x)
				continue
			}
			t.x = s.X
			if t.seenAt == 0 || o.End < t.seenAt {
				t.seenAt = o.End
			}
		}
		missing, first := 0, -1
		for i, ok := range seen {
			if !ok {
				missing++
				if first < 0 {
					first = i
				}
			}
		}
		if missing > 0 {
			r.problem("missing index", &r.MissingIndex, "%s of batch %s returned no error but lacks %d of %d indices, the first %d", o.Mode, o.Batch, missing, n, first)
			r.MissingIndex += missing - 1
		}
		if missing == 0 {
			b.done = true
		}
	}

	// Every accepted task: a result, and its executions within the bound.
	for _, sp := range spans {
		b := sp.b
		for in := sp.lo; in < sp.hi; in++ {
			t := taskOf(in)
			if t.x == "" {
				r.problem("lost", &r.Lost, "batch %s task %d (input %d): no await returned its result (batch complete in an await: %v; %d executions)", b.enq.Batch, t.index, in, b.done, len(t.starts))
			}
			runs := len(t.starts)
			r.Executions += runs
			r.MaxRuns = max(r.MaxRuns, runs)
			if runs <= 1 {
				continue
			}
			r.Duplicates += runs - 1
			slices.Sort(t.starts)
			last := t.starts[runs-1]
			lo, _ := slices.BinarySearch(kills, b.enq.Start)
			hi, _ := slices.BinarySearch(kills, last+1)
			for _, st := range t.starts[1:] {
				cause := FaultNone
				if k, _ := slices.BinarySearch(kills, st); k > lo {
					cause = killFaults[k-1].Kind
				}
				r.DuplicatesAfter[cause]++
			}
			if bound := 1 + hi - lo; runs > bound {
				r.problem("over bound", &r.OverBound, "batch %s task %d (input %d) ran %d times with %d faults during its life", b.enq.Batch, t.index, in, runs, hi-lo)
			}
			if t.seenAt != 0 {
				for _, s := range t.starts {
					if s > t.seenAt {
						r.Late++
					}
				}
			}
		}
	}
	return r
}
