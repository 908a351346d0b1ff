package main

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
	"testing"
)

// lines builds one JSON line per (system, op, n) with the given tasks/s and p50 for
// every speed and worker count.
func lines(speeds []string, figures map[string][2]float64) string {
	var b strings.Builder
	b.WriteString("# a comment\n")
	for _, speed := range speeds {
		for _, w := range []int{1, 2} {
			for sys, f := range figures {
				shape := "tcp"
				if sys == inproc {
					shape = "in-process"
				}
				tp, p50 := f[0], f[1]
				if speed == "half" && sys == ours {
					tp /= 2 // natsbroker falls off a cliff at half speed; nothing else moves
				}
				for _, n := range []int{1, 1000, 10000} {
					fmt.Fprintf(&b, `{"system":%q,"op":"await","n":%d,"iters":3,"tasks_per_s":%g,"p50_ms":%g,"p99_ms":%g,"shape":%q,"workers":%d,"speed":%q,"round":1}`+"\n",
						sys, n, tp, p50, 2*p50, shape, w, speed)
				}
				fmt.Fprintf(&b, `{"system":%q,"op":"throughput","n":10000,"iters":3,"tasks_per_s":%g,"p50_ms":1,"p99_ms":1,"shape":%q,"workers":%d,"speed":%q,"round":1}`+"\n",
					sys, tp, shape, w, speed)
			}
		}
	}
	b.WriteString("# FAILED system=river workers=2 speed=full round=1: it broke\n")
	return b.String()
}

var figures = map[string][2]float64{ // tasks/s, p50 ms
	ours:     {200000, 1},
	inproc:   {300000, 0.5},
	ceiling:  {100000, 2},
	"asynq":  {10000, 5},
	"river":  {50000, 50},
	"bullmq": {40000, 5},
	"celery": {1000, 10},
}

func render(t *testing.T, input string) string {
	t.Helper()
	tb, err := parse(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, speed := range tb.speeds {
		tb.write(&out, speed)
	}
	tb.goals(&out)
	return out.String()
}

func TestGoalsAndRatios(t *testing.T) {
	out := render(t, lines([]string{"full"}, figures))
	for _, want := range []string{
		"| natsbroker | 200,000 | 2.00× | 1.00× | 200,000 | 2.00× | 1.00× |",
		"| natsbroker-inprocess (in-process) | 300,000 | 3.00× | 0.667× |",
		"| celery | 1,000 | 0.0100× | 200× |",
		"natsbroker throughput ÷ jetstream's (goal ≥ 2×): 2.00×: met",
		"natsbroker throughput ÷ asynq's (goal ≥ 10×): 20.0×: met",
		"natsbroker throughput ÷ river's (goal ≥ 5×): 4.00×: MISSED",
		"natsbroker throughput ÷ bullmq's (goal ≥ 10×): 5.00×: MISSED",
		"awaiting 1,000 tasks, p50 ÷ raw JetStream's (goal ≤ 1×): 0.500×: met",
		"a lone task's round trip, p50 ÷ raw JetStream's (goal ≤ 1.5×): 0.500×: met",
		"natsbroker throughput over TCP ÷ in-process (goal ≥ 0.5×): 0.667×: met",
		"no cliff: not measured",
		"| natsbroker | 1.00 / 2.00 (3) |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestNoCliff(t *testing.T) {
	out := render(t, lines([]string{"half", "full"}, figures))
	for _, want := range []string{
		// natsbroker's throughput halves at half speed, its peers' do not: every
		// throughput ratio moves by -50%, the latency ratios do not move.
		"natsbroker throughput ÷ jetstream's (goal ≥ 2×), 1 worker: 2.00× at full, 1.00× at half (-50%): MISSED",
		"a lone task's round trip, p50 ÷ raw JetStream's (goal ≤ 1.5×), 2 workers: 0.500× at full, 0.500× at half (+0%): met",
		"half speed, 2 workers:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Full speed is reported first whatever the input's order.
	if i, j := strings.Index(out, "full speed, 1 worker"), strings.Index(out, "half speed, 1 worker"); i < 0 || j < i {
		t.Errorf("full speed's goals not before half speed's:\n%s", out)
	}
}

func TestParseRefusesGarbage(t *testing.T) {
	for _, in := range []string{
		"not json\n",
		`{"system":"x","op":"await","n":0,"workers":1}` + "\n",
		`{"system":"x","op":"sideways","n":1,"workers":1}` + "\n",
		`{"op":"await","n":1,"workers":1}` + "\n",
	} {
		if _, err := parse(strings.NewReader(in)); err == nil {
			t.Errorf("parse(%q) = nil error, want one", in)
		}
	}
	tb, err := parse(strings.NewReader(lines([]string{"full"}, figures)))
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.failed) != 1 || !strings.Contains(tb.failed[0], "it broke") {
		t.Errorf("failed = %q, want the one FAILED line", tb.failed)
	}
}

// TestNoCliffDirection: a ratio that moves towards its goal at half speed is no
// cliff however far it moves; one that moves away by more than 25% is.
func TestNoCliffDirection(t *testing.T) {
	at := func(p50 float64) string {
		half := maps.Clone(figures)
		half[ours] = [2]float64{figures[ours][0], p50}
		return render(t, lines([]string{"full"}, figures)+lines([]string{"half"}, half))
	}
	for _, c := range []struct {
		p50  float64
		want string
	}{
		{0.5, "a lone task's round trip, p50 ÷ raw JetStream's (goal ≤ 1.5×), 1 worker: 0.500× at full, 0.250× at half (-50%): met"},
		{1.2, "a lone task's round trip, p50 ÷ raw JetStream's (goal ≤ 1.5×), 1 worker: 0.500× at full, 0.600× at half (+20%): met"},
		{1.4, "a lone task's round trip, p50 ÷ raw JetStream's (goal ≤ 1.5×), 1 worker: 0.500× at full, 0.700× at half (+40%): MISSED"},
	} {
		if out := at(c.p50); !strings.Contains(out, c.want) {
			t.Errorf("natsbroker p50 %g ms at half speed: output lacks %q:\n%s", c.p50, c.want, out)
		}
	}
}
