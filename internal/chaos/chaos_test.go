package chaos_test

import (
	"context"
	"flag"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/internal/chaos"
)

var (
	duration = flag.Duration("chaos.duration", 0, "run TestChaos with faults for this long (0: skip it)")
	cluster  = flag.Bool("chaos.cluster", false, "TestChaos: three servers (R3), one killed at a time, instead of one")
	nosync   = flag.Bool("chaos.nosync", false, "TestChaos: the servers' default sync interval instead of SyncAlways")
	dir      = flag.String("chaos.dir", "", "TestChaos: keep the history and data here (default: a temporary directory, removed when the run passed)")
	kill     = flag.String("chaos.kill", "workers,servers", "TestChaos: the kinds of process killed (workers, servers, or both)")
	history  = flag.String("chaos.history", "", "TestCheckHistory: check the history a run left in this directory (its history/ subdirectory)")
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
	cfg := &chaos.Config{Duration: *duration, Cluster: *cluster, NoSync: *nosync, Dir: *dir, Seed: *seed, Log: testLog{t}}
	kinds := strings.Split(*kill, ",")
	for _, k := range kinds {
		if k != "workers" && k != "servers" {
			t.Fatalf("-chaos.kill %q: want workers, servers or workers,servers", *kill)
		}
	}
	if !slices.Contains(kinds, "workers") {
		cfg.WorkerKills = -1
	}
	if !slices.Contains(kinds, "servers") {
		cfg.ServerKills = -1
	}
	rep, err := chaos.Run(ctx, cfg)
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

// TestCheckHistory checks a history a run kept (-chaos.history DIR), to
// read a failed run again or check it with a changed checker.
func TestCheckHistory(t *testing.T) {
	if *history == "" {
		t.Skip("runs only with -chaos.history")
	}
	h, err := chaos.ReadHistory(filepath.Join(*history, "history"))
	if err != nil {
		t.Fatal(err)
	}
	rep := chaos.Check(h)
	t.Logf("report:\n%s", rep)
	if !rep.OK() {
		t.Fatal("the history broke a promise (see the report)")
	}
}
