package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEndToEnd builds the binary and runs the deployed shape on loopback
// TCP: serve with no workers of its own and its NATS port open with a
// token, two worker processes, and a 10,000-item batch through submit.
// One worker is killed (SIGKILL) mid-batch; its tasks run again on the
// other after their lease. Every result must be at its index, the exit
// status 0, and serve and the surviving worker must drain and exit 0 on
// SIGTERM.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "gather")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const token = "e2e-nats-token"
	serve := start(t, ctx, bin, "serve", "--workers", "0", "--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0",
		"--nats-listen", "127.0.0.1:0", "--nats-token", token, "--lease", "2s", "--log-format", "json")
	ready := serve.waitLog(t, "serving")
	api, natsURL := ready["api"].(string), ready["nats"].(string)
	w1 := start(t, ctx, bin, "worker", "--nats", natsURL, "--nats-token", token, "--concurrency", "4", "--lease", "2s", "--log-format", "json")
	w2 := start(t, ctx, bin, "worker", "--nats", natsURL, "--concurrency", "4", "--lease", "2s", "--log-format", "json")
	w1.waitLog(t, "working")
	w2.waitLog(t, "working")

	const n = 10_000
	var items strings.Builder
	for i := range n {
		fmt.Fprintf(&items, `{"duration":"1ms","value":%d}`+"\n", i)
	}
	sub := exec.CommandContext(ctx, bin, "submit", "--server", api, "--kind", "sleep", "--progress", "never")
	sub.Stdin = strings.NewReader(items.String())
	stdout, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var subErr strings.Builder
	sub.Stderr = &subErr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	i := 0
	for ; sc.Scan(); i++ {
		var got struct {
			Slept string
			Value int
		}
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil || got.Slept != "1ms" || got.Value != i {
			t.Fatalf("line %d: %q (%v)", i, sc.Bytes(), err)
		}
		if i == n/5 {
			// Mid-batch: kill the first worker without a chance to hand
			// its tasks back.
			if err := w1.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("submit: %v\n%s", err, subErr.String())
	}
	if i != n {
		t.Fatalf("%d result lines, want %d", i, n)
	}
	if !strings.Contains(subErr.String(), fmt.Sprintf("%d items: %d ok, 0 failed", n, n)) {
		t.Fatalf("submit stderr: %s", subErr.String())
	}
	if err := w1.cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("killed worker: %v", err)
	}
	for _, p := range []*proc{w2, serve} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("%s after SIGTERM: %v", p.name, err)
		}
	}
}

// proc is a process of the binary whose stderr (JSON logs) is read line
// by line.
type proc struct {
	name  string
	cmd   *exec.Cmd
	lines chan map[string]any
}

func start(t *testing.T, ctx context.Context, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = os.Environ()
	if args[0] == "worker" && !slices.Contains(args, "--nats-token") {
		// The second worker takes its token from the environment.
		cmd.Env = append(cmd.Env, "GATHER_NATS_TOKEN=e2e-nats-token")
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: args[0], cmd: cmd, lines: make(chan map[string]any, 256)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	go p.read(stderr) // ends when the process's stderr closes
	return p
}

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			select {
			case p.lines <- m:
			default: // 256 records nobody read: drop the rest
			}
		}
	}
	close(p.lines)
}

// waitLog returns the first log record with message msg.
func (p *proc) waitLog(t *testing.T, msg string) map[string]any {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case m, ok := <-p.lines:
			if !ok {
				t.Fatalf("%s exited before logging %q", p.name, msg)
			}
			if m["msg"] == msg {
				return m
			}
		case <-timeout:
			t.Fatalf("%s did not log %q in two minutes", p.name, msg)
		}
	}
}
