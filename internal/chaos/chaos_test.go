package chaos_test

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/gather-go/gather/internal/chaos"
)

var (
	duration = flag.Duration("chaos.duration", 0, "run TestChaos with faults for this long (0: skip it)")
	cluster  = flag.Bool("chaos.cluster", false, "TestChaos: three servers (R3), one killed at a time, instead of one")
	nosync   = flag.Bool("chaos.nosync", false, "TestChaos: the servers' default sync interval instead of SyncAlways")
	dir      = flag.String("chaos.dir", "", "TestChaos: keep the history and data here (default: a temporary directory, removed when the run passed)")
	seed     = flag.Uint64("chaos.seed", 0, "TestChaos: the random seed (0: random)")
)

// TestChaos runs the chaos test for -chaos.duration (make chaos, make
// chaos-short): real server, producer and worker processes on loopback,
// workers and servers SIGKILLed at random, then the history checked.
func TestChaos(t *testing.T) {
	if *duration <= 0 {
		t.Skip("runs only with -chaos.duration (make chaos, make chaos-short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *duration+20*time.Minute)
	defer cancel()
	rep, err := chaos.Run(ctx, &chaos.Config{Duration: *duration, Cluster: *cluster, NoSync: *nosync, Dir: *dir, Seed: *seed, Log: testLog{t}})
	if rep != nil {
		t.Logf("report:\n%s", rep)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatal("the history broke a promise (see the report)")
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}
