package queue_test

import (
	"strings"
	"testing"

	"github.com/gather-go/gather/queue"
)

// FuzzParseTaskID: a task ID comes from users (Redrive, the dead-letter
// cursor) as well as from TaskID. ParseTaskID never panics; what it
// accepts names a non-empty batch and a non-negative index, and TaskID of
// those parses back to the same pair.
func FuzzParseTaskID(f *testing.F) {
	for _, s := range []string{"", "/", "b/0", "b/17", "a/b/3", "b/-1", "b/+5", "b/05", "/5", "b/", "b/99999999999999999999", "b/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		batch, n, err := queue.ParseTaskID(id)
		if err != nil {
			if batch != "" || n != 0 {
				t.Fatalf("ParseTaskID(%q) = %q, %d with error %v", id, batch, n, err)
			}
			return
		}
		if batch == "" || n < 0 || !strings.HasPrefix(id, batch+"/") {
			t.Fatalf("ParseTaskID(%q) = %q, %d", id, batch, n)
		}
		b2, n2, err := queue.ParseTaskID(queue.TaskID(batch, n))
		if err != nil || b2 != batch || n2 != n {
			t.Fatalf("TaskID(%q, %d) parses to %q, %d, %v", batch, n, b2, n2, err)
		}
	})
}
