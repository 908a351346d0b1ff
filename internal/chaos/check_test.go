package chaos_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gather-go/gather/internal/chaos"
)

// clean is a history that keeps every promise: two batches, of 3 tasks
// (inputs 0-2) and 2 tasks (inputs 10-11, the second failing by design), a
// refused enqueue (inputs 3-9) one of whose tasks ran anyway, a worker
// kill after which task 1 ran again, and each batch awaited twice.
func clean() *chaos.History {
	h := &chaos.History{
		Enqueues: []chaos.Enqueue{
			{Batch: "a", Base: 0, N: 3, Start: 100, End: 110},
			{Base: 3, N: 7, Start: 120, End: 130, Err: "queue: enqueue: timeout"},
			{Batch: "b", Base: 10, N: 2, Fail: []int{1}, Start: 140, End: 150},
		},
		Faults: []chaos.Fault{{T: 200, Kind: chaos.FaultWorkerKill, Target: "w1"}, {T: 201, Kind: chaos.FaultWorkerStart, Target: "w2"}},
	}
	run := func(in int64, x string, t int64, finish bool) {
		h.Execs = append(h.Execs, chaos.Exec{In: in, X: x, T: t})
		if finish {
			h.Execs = append(h.Execs, chaos.Exec{In: in, X: x, T: t + 1, End: true})
		}
	}
	run(0, "w1.1", 150, true)
	run(1, "w1.2", 150, false) // killed at 200
	run(1, "w2.1", 300, true)
	run(2, "w2.2", 300, true)
	run(10, "w2.3", 300, true)
	run(chaos.FailInput(11), "w2.4", 300, true)
	run(5, "w2.5", 310, true) // a task of the refused enqueue
	h.Observations = []chaos.Observation{
		{Batch: "a", Mode: chaos.ModeAwait, Start: 110, End: 200, Err: "nats: connection closed"},
		{Batch: "a", Mode: chaos.ModeAwait, Start: 210, End: 400, Results: []chaos.Seen{
			{I: 0, V: chaos.Expected(0), X: "w1.1"}, {I: 1, V: chaos.Expected(1), X: "w2.1"}, {I: 2, V: chaos.Expected(2), X: "w2.2"}}},
		{Batch: "b", Mode: chaos.ModeResults, Start: 150, End: 400, Results: []chaos.Seen{
			{I: 1, Err: "queue: task failed: " + chaos.FailError("w2.4")}, {I: 0, V: chaos.Expected(10), X: "w2.3"}}},
		{Batch: "a", Mode: chaos.ModeFinal, Start: 500, End: 510, Results: []chaos.Seen{
			{I: 0, V: chaos.Expected(0), X: "w1.1"}, {I: 1, V: chaos.Expected(1), X: "w2.1"}, {I: 2, V: chaos.Expected(2), X: "w2.2"}}},
		{Batch: "b", Mode: chaos.ModeFinal, Start: 500, End: 510, Results: []chaos.Seen{
			{I: 0, V: chaos.Expected(10), X: "w2.3"}, {I: 1, Err: "queue: task failed: " + chaos.FailError("w2.4")}}},
	}
	return h
}

func TestCheckCleanHistory(t *testing.T) {
	t.Parallel()
	r := chaos.Check(clean())
	if !r.OK() || len(r.Problems) != 0 {
		t.Fatalf("a clean history fails:\n%s", r)
	}
	if r.Tasks != 5 || r.Batches != 2 || r.Rejected != 1 || r.Duplicates != 1 || r.MaxRuns != 2 ||
		r.RejectedRuns != 1 || r.AwaitErrors != 1 || r.Faults[chaos.FaultWorkerKill] != 1 ||
		r.DuplicatesAfter[chaos.FaultWorkerKill] != 1 || len(r.DuplicatesAfter) != 1 || r.FailByDesign != 1 {
		t.Fatalf("counts:\n%s", r)
	}
}

// TestCheckCatches: each broken promise, made by changing one thing in the
// clean history, is reported with the right count, and the report fails.
func TestCheckCatches(t *testing.T) {
	t.Parallel()
	obs := func(h *chaos.History, i int) *chaos.Observation { return &h.Observations[i] }
	tests := []struct {
		name  string
		edit  func(h *chaos.History)
		count func(r *chaos.Report) int
		want  int
	}{
		{"lost result", func(h *chaos.History) {
			// Task 2 of batch a is in no await: the first returned two
			// results, the final one failed.
			obs(h, 1).Results = obs(h, 1).Results[:2]
			obs(h, 3).Results, obs(h, 3).Err = nil, "nats: timeout"
		}, func(r *chaos.Report) int { return r.Lost }, 1},
		{"wrong value", func(h *chaos.History) { obs(h, 1).Results[2].V++ },
			func(r *chaos.Report) int { return r.Wrong }, 1},
		{"result at the wrong index", func(h *chaos.History) {
			res := obs(h, 2).Results
			res[0].I, res[1].I = res[1].I, res[0].I
		}, func(r *chaos.Report) int { return r.Wrong }, 2},
		{"failed task", func(h *chaos.History) { obs(h, 1).Results[0].Err = "bad_input: no" },
			func(r *chaos.Report) int { return r.Wrong }, 1},
		{"task failing by design returns a value", func(h *chaos.History) {
			obs(h, 2).Results[0] = chaos.Seen{I: 1, V: chaos.Expected(11), X: "w2.4"}
		}, func(r *chaos.Report) int { return r.Wrong }, 1},
		{"task failing by design with another error", func(h *chaos.History) {
			obs(h, 4).Results[1].Err = "queue: task canceled: batch canceled"
		}, func(r *chaos.Report) int { return r.Wrong }, 1},
		{"failure of no execution", func(h *chaos.History) {
			obs(h, 4).Results[1].Err = chaos.FailError("w1.2") // the killed run of task 1 of batch a
		}, func(r *chaos.Report) int { return r.Wrong }, 1},
		{"duplicated index", func(h *chaos.History) {
			o := obs(h, 2)
			o.Results = append(o.Results, o.Results[0])
		}, func(r *chaos.Report) int { return r.DuplicatedIndex }, 1},
		{"missing index", func(h *chaos.History) { obs(h, 4).Results = obs(h, 4).Results[1:] },
			func(r *chaos.Report) int { return r.MissingIndex }, 1},
		{"index out of range", func(h *chaos.History) { obs(h, 1).Results[2].I = 3 },
			func(r *chaos.Report) int { return r.Wrong }, 1},
		{"hang", func(h *chaos.History) {
			h.Observations = append(h.Observations, chaos.Observation{Batch: "b", Mode: chaos.ModeSettled, Start: 150, End: 1e12, Hang: true, Err: "context deadline exceeded"})
		}, func(r *chaos.Report) int { return r.Hangs }, 1},
		{"two recorded results", func(h *chaos.History) {
			// The final await returns task 1's first, killed, execution.
			obs(h, 3).Results[1].X = "w1.2"
		}, func(r *chaos.Report) int { return r.Wrong }, 1},
		{"two results that both ran to their end", func(h *chaos.History) {
			h.Execs = append(h.Execs, chaos.Exec{In: 2, X: "w3.1", T: 600}, chaos.Exec{In: 2, X: "w3.1", T: 601, End: true})
			h.Faults = append(h.Faults, chaos.Fault{T: 550, Kind: chaos.FaultServerKill})
			obs(h, 3).Results[2].X = "w3.1"
		}, func(r *chaos.Report) int { return r.Wrong }, 1},
		{"result of no execution", func(h *chaos.History) { obs(h, 4).Results[0].X = "w9.9" },
			func(r *chaos.Report) int { return r.Wrong }, 1},
		{"await of a batch never accepted", func(h *chaos.History) { obs(h, 0).Batch = "zz" },
			func(r *chaos.Report) int { return r.Wrong }, 1},
		{"runs over the bound", func(h *chaos.History) {
			// Task 0 runs twice more, with one fault in its life.
			h.Execs = append(h.Execs, chaos.Exec{In: 0, X: "w2.9", T: 300}, chaos.Exec{In: 0, X: "w2.10", T: 301})
		}, func(r *chaos.Report) int { return r.OverBound }, 1},
		{"phantom run", func(h *chaos.History) { h.Execs = append(h.Execs, chaos.Exec{In: 99, X: "w2.9", T: 300}) },
			func(r *chaos.Report) int { return r.Phantom }, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := clean()
			tc.edit(h)
			r := chaos.Check(h)
			if r.OK() {
				t.Fatalf("passes:\n%s", r)
			}
			if got := tc.count(r); got != tc.want {
				t.Fatalf("count %d, want %d:\n%s", got, tc.want, r)
			}
			if len(r.Problems) == 0 {
				t.Fatalf("no problem described:\n%s", r)
			}
		})
	}
}

// TestCheckBoundCountsFaultsInLife: a second run is within the bound only
// when a fault came between the task's enqueue and its last start.
func TestCheckBoundCountsFaultsInLife(t *testing.T) {
	t.Parallel()
	h := clean()
	h.Faults = []chaos.Fault{{T: 50, Kind: chaos.FaultServerKill}, {T: 350, Kind: chaos.FaultNodeKill}}
	if r := chaos.Check(h); r.OverBound != 1 || r.DuplicatesAfter[chaos.FaultNone] != 1 {
		t.Fatalf("faults before the enqueue and after the rerun count:\n%s", r)
	}
	h.Faults = append(h.Faults, chaos.Fault{T: 250, Kind: chaos.FaultServerStart})
	if r := chaos.Check(h); r.OverBound != 1 {
		t.Fatalf("a start counts as a fault:\n%s", r)
	}
	h.Faults = append(h.Faults, chaos.Fault{T: 250, Kind: chaos.FaultNodeKill})
	if r := chaos.Check(h); !r.OK() || r.DuplicatesAfter[chaos.FaultNodeKill] != 1 {
		t.Fatalf("a node kill in the task's life does not count:\n%s", r)
	}
}

// TestCheckNothingAccepted: a history with no accepted task fails, so that
// a harness that never ran cannot pass.
func TestCheckNothingAccepted(t *testing.T) {
	t.Parallel()
	if r := chaos.Check(&chaos.History{}); r.OK() {
		t.Fatal("an empty history passes")
	}
}

// TestReadHistory: what the processes write reads back; a torn last line
// of an execution file (a worker killed inside write) is dropped, and a bad
// line elsewhere is an error naming the file.
func TestReadHistory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("producer.jsonl", `{"enq":{"batch":"a","base":0,"n":1,"start":1,"end":2}}`+"\n"+
		`{"obs":{"batch":"a","mode":"await","start":2,"end":5,"res":[{"i":0,"v":1,"x":"w1.1"}]}}`+"\n")
	write("faults.jsonl", `{"t":3,"kind":"worker-kill","target":"w0"}`+"\n")
	write("exec-w1.log", "S 0 w1.1 3\nE 0 w1.1 4\nS 7 w1")
	h, err := chaos.ReadHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Enqueues) != 1 || len(h.Observations) != 1 || len(h.Faults) != 1 || len(h.Execs) != 2 || !h.Execs[1].End {
		t.Fatalf("read %+v", h)
	}
	if r := chaos.Check(h); !r.OK() {
		t.Fatalf("%s", r)
	}
	write("exec-w2.log", "S zero w2.1 3\n")
	if _, err := chaos.ReadHistory(dir); err == nil || !strings.Contains(err.Error(), "exec-w2.log") {
		t.Fatalf("bad line: %v", err)
	}
}
