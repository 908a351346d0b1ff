package otelqueue_test

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/queue/queuetest"
)

// TestCoreDoesNotLinkOpenTelemetry: no package of the module but this one
// depends on OpenTelemetry, so that a program using queue, its brokers or
// the gather command links none of it. As a control, this package's own
// dependencies include it (the check can see what it looks for).
func TestCoreDoesNotLinkOpenTelemetry(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH:", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(5*time.Minute))
	defer cancel()
	list := func(args ...string) []string {
		t.Helper()
		cmd := exec.CommandContext(ctx, gobin, append([]string{"list"}, args...)...)
		cmd.Dir = "../.." // the module's root
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := errors.AsType[*exec.ExitError](err); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return strings.Fields(string(out))
	}
	const self = "github.com/gather-go/gather/queue/otelqueue"
	pkgs := slices.DeleteFunc(list("./..."), func(p string) bool { return p == self })
	for _, core := range []string{"github.com/gather-go/gather/queue", "github.com/gather-go/gather/queue/natsbroker",
		"github.com/gather-go/gather/queue/membroker", "github.com/gather-go/gather/cmd/gather"} {
		if !slices.Contains(pkgs, core) {
			t.Fatalf("go list ./... does not list %s: %v", core, pkgs)
		}
	}
	var linked []string
	for _, dep := range list(append([]string{"-deps"}, pkgs...)...) {
		if strings.HasPrefix(dep, "go.opentelemetry.io/") || dep == self {
			linked = append(linked, dep)
		}
	}
	if len(linked) > 0 {
		t.Errorf("the module's other packages depend on %v", linked)
	}
	if !slices.Contains(list("-deps", self), "go.opentelemetry.io/otel/trace") {
		t.Errorf("go list -deps %s does not show go.opentelemetry.io/otel/trace: the check cannot see it", self)
	}
}
