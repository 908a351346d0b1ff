package natsbroker_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// anchorSuffix ends a queue's anchor subject, which no task is on (see
// anchor.go).
const anchorSuffix = ".anchor"

// taskMsgs returns the messages of tasks in stream st: all but anchors.
func taskMsgs(t *testing.T, ctx context.Context, st jetstream.Stream) uint64 {
	t.Helper()
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	n := info.State.Msgs
	for s, k := range info.State.Subjects {
		if strings.HasSuffix(s, anchorSuffix) {
			n -= k
		}
	}
	return n
}
