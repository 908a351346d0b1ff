package natsserver_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/gather-go/gather/queue/natsbroker/natsserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A listener with a token refuses clients without it; Connect presents
// it; the server's logs go to the slog.Logger.
func TestCredentialsAndLogs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var logs lockedBuffer
	for _, c := range []struct {
		name string
		cfg  natsserver.Config
		opt  nats.Option
	}{
		{"token", natsserver.Config{Token: "t0k"}, nats.Token("t0k")},
		{"user", natsserver.Config{User: "u", Password: "p"}, nats.UserInfo("u", "p")},
	} {
		cfg := c.cfg
		cfg.Dir, cfg.Listen, cfg.Logger = t.TempDir(), "127.0.0.1:0", slog.New(slog.NewTextHandler(&logs, nil))
		s, err := natsserver.Start(ctx, &cfg)
		if err != nil {
			t.Fatal(err)
		}
		if nc, err := nats.Connect(s.ClientURL()); err == nil {
			nc.Close()
			t.Errorf("%s: connected without credentials", c.name)
		}
		nc, err := nats.Connect(s.ClientURL(), c.opt)
		if err != nil {
			t.Errorf("%s: with credentials: %v", c.name, err)
		} else {
			nc.Close()
		}
		nc, err = s.Connect()
		if err != nil {
			t.Errorf("%s: in-process: %v", c.name, err)
		} else {
			nc.Close()
		}
		s.Shutdown()
	}
	if !strings.Contains(logs.String(), "src=nats") || !strings.Contains(logs.String(), "Server is ready") {
		t.Fatalf("logs: %q", logs.String())
	}
	for _, cfg := range []natsserver.Config{
		{Dir: t.TempDir(), User: "u"},
		{Dir: t.TempDir(), Token: "t", User: "u", Password: "p"},
	} {
		if s, err := natsserver.Start(ctx, &cfg); err == nil {
			s.Shutdown()
			t.Errorf("%+v: no error", cfg)
		}
	}
}
