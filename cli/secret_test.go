package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/queue/natsbroker/natsserver"
)

// TestLogsHideNATSPassword runs serve and a worker on a NATS URL that
// carries a password: neither logs it.
func TestLogsHideNATSPassword(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns, err := natsserver.Start(ctx, &natsserver.Config{Dir: t.TempDir(), Listen: "127.0.0.1:0", User: "u", Password: "s3cretpw"})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	u := strings.Replace(ns.ClientURL(), "nats://", "nats://u:s3cretpw@", 1)
	s := startServe(t, "--nats", u, "--workers", "0", "--log-level", "info")
	var werr syncBuffer
	wctx, wcancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() {
		exited <- Run(wctx, []string{"worker", "--nats", u, "--log-level", "info"}, strings.NewReader(""), &syncBuffer{}, &werr)
	}()
	code, out, errOut := run(t, "", "submit", "--server", s.http, "--kind", "echo", "--args", "1")
	if code != 0 || out != "1\n" {
		t.Fatalf("submit: exit %d, %q, %q", code, out, errOut)
	}
	wcancel()
	if code := <-exited; code != 0 {
		t.Fatalf("worker exit %d: %s", code, werr.String())
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exit %d: %s", code, s.stderr)
	}
	for name, log := range map[string]string{"serve": s.stderr.String(), "worker": werr.String()} {
		if strings.Contains(log, "s3cretpw") {
			t.Errorf("%s logs the NATS password:\n%s", name, log)
		}
		if !strings.Contains(log, "nats://u:") {
			t.Errorf("%s does not log the NATS URL:\n%s", name, log)
		}
	}
}
