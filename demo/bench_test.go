package demo

import (
	"context"
	"flag"
	"testing"
	"time"
)

var benchDuration = flag.Duration("demo.duration", 10*time.Second, "how long each BenchmarkDemo run lasts")

// BenchmarkDemo measures issue 12's speed goal: 4 venues x 300 symbols, a
// cut every 100 ms, each cut's 300 NBBO tasks through the queue on the
// embedded server; p99 cut-to-result latency should stay under 50 ms. One
// iteration is one run of -demo.duration (default 10s); run it alone on the
// machine, for instance:
//
//	go test -run '^$' -bench BenchmarkDemo -benchtime 3x ./demo/ -args -demo.duration 20s
func BenchmarkDemo(b *testing.B) {
	args := []string{"--venues", "4", "--symbols", "300", "--interval", "100ms", "--plain",
		"--duration", benchDuration.String()}
	var lat []time.Duration
	cuts, complete, skipped, tasks := 0, 0, 0, 0
	var elapsed time.Duration
	for b.Loop() {
		code, sum := run(context.Background(), Config{Args: args})
		if code != ExitOK || sum == nil {
			b.Fatalf("demo exited %d", code)
		}
		lat = append(lat, sum.lat...)
		cuts += sum.cuts
		complete += sum.complete
		skipped += sum.skipped
		tasks += sum.tasks
		elapsed += sum.elapsed
	}
	ps := percentiles(lat, 50, 99, 100)
	msf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(msf(ps[0]), "p50-ms")
	b.ReportMetric(msf(ps[1]), "p99-ms")
	b.ReportMetric(msf(ps[2]), "max-ms")
	b.ReportMetric(float64(cuts)/float64(b.N), "cuts/op")
	b.ReportMetric(float64(complete)/float64(max(cuts, 1)), "complete/cut")
	b.ReportMetric(float64(skipped)/float64(b.N), "skipped/op")
	b.ReportMetric(float64(tasks)/elapsed.Seconds(), "tasks/s")
}
