package cli

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestPythonClient runs the Python asyncio client of docs/program.md
// against a server, so that the page stays true.
func TestPythonClient(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	doc, err := os.ReadFile("../docs/program.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```python\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no python block in docs/program.md")
	}
	s := startServe(t, "--workers", "4")
	src := strings.Replace(string(m[1]), `SERVER = "http://127.0.0.1:8080"`, `SERVER = "`+s.http+`"`, 1)
	if src == string(m[1]) {
		t.Fatal("the client's SERVER line changed: update this test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", src).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	want := `[200, 'RuntimeError(\'failed: Get "http://127.0.0.1:1/": dial tcp 127.0.0.1:1: connect: connection refused\')']` + "\n" +
		`[{'slept': '1s'}, {'slept': '2s'}]` + "\n"
	if string(out) != want {
		t.Fatalf("python printed\n%s\nwant\n%s", out, want)
	}
}
