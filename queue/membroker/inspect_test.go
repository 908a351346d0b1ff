package membroker_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// TestInspectForgotten: batches forgotten past MaxFinished leave the
// listing, across the compactions of the broker's enqueue log, and the
// cursor still pages through the rest newest first.
func TestInspectForgotten(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, err := membroker.New(&membroker.Config{MaxFinished: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var ids []string
	for i := range 5000 { // compacts the log several times
		ids = append(ids, finishOne(t, ctx, b, fmt.Sprint("f-", i)))
	}
	want := slices.Clone(ids[len(ids)-100:])
	slices.Reverse(want)
	var got []string
	f := queue.BatchFilter{Limit: 7}
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("no end")
		}
		page, next, err := b.Batches(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, bi := range page {
			if !bi.Finished() || bi.Done != 1 || bi.Size != 1 {
				t.Fatalf("batch %+v: want one task, done", bi)
			}
			got = append(got, bi.ID)
		}
		if next == "" {
			break
		}
		f.After = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d batches %v..., want the %d kept, newest first", len(got), got[:min(3, len(got))], len(want))
	}
}
