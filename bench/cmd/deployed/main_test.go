package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestMain lets the driver under test start this test binary in its other roles,
// as it starts the deployed program.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && slices.Contains([]string{"natsd", "worker", "produce"}, os.Args[1]) {
		os.Exit(run(os.Args[1:], os.Stdout))
	}
	os.Exit(m.Run())
}

// TestDriveNATS runs the driver on the systems that need nothing installed
// (gather's queue over TCP, packed and unpacked, in-process, and raw JetStream),
// each with 1 and 2 worker processes and a server process, and checks that every
// measurement came back from its producer process with its shape.
func TestDriveNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts about 20 processes")
	}
	systems := []string{"natsbroker", "natsbroker-unpacked", "natsbroker-inprocess", "jetstream"}
	var out bytes.Buffer
	err := drive(t.Context(), []string{
		"-systems", strings.Join(systems, ","), "-workers", "1,2",
		// 300 tasks: natsbroker packs them, 4 to a message.
		"-sizes", "1,300", "-chunk", "300", "-benchtime", "0s", "-timeout", "2m", "-warmup", "1",
	}, &out)
	if err != nil {
		t.Fatalf("drive: %v\noutput:\n%s", err, out.String())
	}
	got := map[string]bool{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		var r struct {
			result
			Shape   string `json:"shape"`
			Workers int    `json:"workers"`
			Speed   string `json:"speed"`
			Round   int    `json:"round"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		wantShape := "tcp"
		if r.System == "natsbroker-inprocess" {
			wantShape = "in-process"
		}
		if r.Iters < 1 || r.TasksS <= 0 || r.P50ms <= 0 || r.P99ms < r.P50ms || r.Shape != wantShape || r.Speed != "full" {
			t.Errorf("implausible result: %s", sc.Text())
		}
		k := fmt.Sprintf("%s/%d/%s/%d", r.System, r.Workers, r.Op, r.N)
		if got[k] || r.Round != 1 {
			t.Errorf("result of round %d for %s (seen before: %v): the warm-up round's results must be left out", r.Round, k, got[k])
		}
		got[k] = true
	}
	for _, s := range systems {
		for _, w := range []int{1, 2} {
			for _, m := range []string{"await/1", "await/300", "throughput/300"} {
				if k := fmt.Sprintf("%s/%d/%s", s, w, m); !got[k] {
					t.Errorf("no result for %s", k)
				}
			}
		}
	}
}

func TestDriveRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-systems", "natsbroker,rabbit"},
		{"-workers", "0"},
		{"-sizes", "1,x"},
		{"-chunk", "-5"},
		{"-count", "0"},
		{"-warmup", "-1"},
		{"stray"},
	} {
		var out bytes.Buffer
		if err := drive(t.Context(), args, &out); err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("drive %q = %v, want a usage error", args, err)
		}
	}
}
