package gather_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gather-go/gather"
)

// fetchData stands in for an asynchronous fetch, as in the seed's examples.
func fetchData(ctx context.Context, source string) (string, error) {
	if source == "Source B" {
		return "", errors.New("data fetch failed from Source B")
	}
	select {
	case <-time.After(10 * time.Millisecond):
		return "Data from " + source, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// The seed's first example: three sources fetched concurrently, results in input order.
func ExampleAll() {
	ctx := context.Background()
	sources := []string{"Source A", "Source C", "Source D"}
	fns := make([]func(context.Context) (string, error), len(sources))
	for i, s := range sources {
		fns[i] = func(ctx context.Context) (string, error) { return fetchData(ctx, s) }
	}
	results, err := gather.All(ctx, fns...)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Printf("Collected data: %q\n", results)
	// Output: Collected data: ["Data from Source A" "Data from Source C" "Data from Source D"]
}

// The seed's second example: one source fails, the others are still reported, each
// outcome at the index of its source.
func ExampleSettled() {
	ctx := context.Background()
	sources := []string{"Source A", "Source B", "Source C"}
	fns := make([]func(context.Context) (string, error), len(sources))
	for i, s := range sources {
		fns[i] = func(ctx context.Context) (string, error) { return fetchData(ctx, s) }
	}
	for i, r := range gather.Settled(ctx, fns...) {
		if r.Err != nil {
			fmt.Printf("Error fetching data from %s: %v\n", sources[i], r.Err)
		} else {
			fmt.Printf("Data from %s: %s\n", sources[i], r.Value)
		}
	}
	// Output:
	// Data from Source A: Data from Source A
	// Error fetching data from Source B: data fetch failed from Source B
	// Data from Source C: Data from Source C
}

// A failing task makes All return its error with its index; errors.Is reaches the
// task's own error.
func ExampleAll_failFast() {
	errNotFound := errors.New("not found")
	_, err := gather.All(context.Background(),
		func(ctx context.Context) (int, error) { return 1, nil },
		func(ctx context.Context) (int, error) { return 0, errNotFound },
	)
	var te *gather.TaskError
	fmt.Println(errors.Is(err, errNotFound), errors.As(err, &te) && te.Index == 1)
	fmt.Println(err)
	// Output:
	// true true
	// gather: task 1: not found
}

func ExampleMap() {
	words := []string{"gather", "results", "in", "order"}
	lengths, err := gather.Map(context.Background(), words,
		func(ctx context.Context, w string) (int, error) { return len(w), nil },
		gather.Limit(2))
	fmt.Println(lengths, err)
	// Output: [6 7 2 5] <nil>
}

// JoinErrors runs every task and reports every failure, each with its index.
func ExampleJoinErrors() {
	_, err := gather.Map(context.Background(), []int{1, -2, 3, -4},
		func(ctx context.Context, n int) (int, error) {
			if n < 0 {
				return 0, fmt.Errorf("negative input %d", n)
			}
			return n, nil
		}, gather.JoinErrors())
	fmt.Println(err)
	// Output:
	// gather: task 1: negative input -2
	// gather: task 3: negative input -4
}

func ExampleMapSettled() {
	results := gather.MapSettled(context.Background(), []string{"8080", "http", "443"},
		func(ctx context.Context, s string) (int, error) {
			var port int
			_, err := fmt.Sscan(s, &port)
			return port, err
		})
	for i, r := range results {
		fmt.Println(i, r.Value, r.Err != nil)
	}
	// Output:
	// 0 8080 false
	// 1 0 true
	// 2 443 false
}

func ExampleValues() {
	results := []gather.Result[int]{{Value: 1}, {Err: errors.New("boom")}, {Value: 3}}
	values, err := gather.Values(results)
	fmt.Println(values, err)
	// Output: [1 0 3] gather: task 1: boom
}

// A Group collects the results of tasks discovered as others run: here a walk of a
// small tree, each node's task adding its children.
func ExampleGroup() {
	children := map[string][]string{"/": {"/a", "/b"}, "/a": {"/a/x"}}
	g := gather.NewGroup[string](context.Background(), gather.Limit(4))
	var visit func(path string) func(context.Context) (string, error)
	visit = func(path string) func(context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			for _, c := range children[path] {
				g.Go(visit(c))
			}
			return strings.ToUpper(path), nil
		}
	}
	g.Go(visit("/"))
	paths, err := g.Wait()
	slices.Sort(paths) // results are in the order Go was called, which here depends on timing
	fmt.Println(paths, err)
	// Output: [/ /A /A/X /B] <nil>
}

// Stream yields each outcome as soon as it is ready, with its input's index. Here the
// tasks finish in the order 1, 2, 0: each waits for its turn, handed out by the loop.
func ExampleStream() {
	order := []int{1, 2, 0}
	turn := []chan struct{}{make(chan struct{}), make(chan struct{}), make(chan struct{})}
	close(turn[order[0]])
	k := 0
	for i, r := range gather.Stream(context.Background(), []string{"a", "b", "c"},
		func(ctx context.Context, s string) (string, error) {
			<-turn[strings.Index("abc", s)]
			return strings.ToUpper(s), nil
		}) {
		fmt.Println(i, r.Value)
		if k++; k < len(order) {
			close(turn[order[k]])
		}
	}
	// Output:
	// 1 B
	// 2 C
	// 0 A
}

// StreamOrdered yields outcomes in input order while at most window tasks are started
// ahead of the reader.
func ExampleStreamOrdered() {
	squares := gather.StreamOrdered(context.Background(), []int{1, 2, 3, 4, 5},
		func(ctx context.Context, n int) (int, error) { return n * n, nil }, 2)
	for i, r := range squares {
		fmt.Print(i, ":", r.Value, " ")
	}
	fmt.Println()
	// Output: 0:1 1:4 2:9 3:16 4:25
}

// Timeout bounds each task: a task that honours its context returns
// context.DeadlineExceeded when its time is up, and the others are unaffected.
func ExampleTimeout() {
	results := gather.MapSettled(context.Background(), []time.Duration{0, time.Hour},
		func(ctx context.Context, d time.Duration) (string, error) {
			select {
			case <-time.After(d):
				return "on time", nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}, gather.Timeout(50*time.Millisecond))
	for i, r := range results {
		fmt.Println(i, r.Value, r.Err)
	}
	// Output:
	// 0 on time <nil>
	// 1  context deadline exceeded
}

// Any returns the first success and cancels the rest, as Promise.any does: here the
// same query goes to three replicas; one is down, one answers, and the slow one is
// cancelled (and waited for) once the answer is in.
func ExampleAny() {
	ask := func(replica string) func(context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			switch replica {
			case "eu-1":
				return "", errors.New("connection refused")
			case "us-1":
				return "42 (from us-1)", nil
			}
			<-ctx.Done() // ap-1 is slow: it gives up when another replica answers
			return "", context.Cause(ctx)
		}
	}
	answer, err := gather.Any(context.Background(), ask("eu-1"), ask("us-1"), ask("ap-1"))
	fmt.Println(answer, err)
	// Output: 42 (from us-1) <nil>
}

// When every task fails, Any reports every failure with its index, like JavaScript's
// AggregateError.
func ExampleAny_allFail() {
	_, err := gather.Any(context.Background(),
		func(ctx context.Context) (int, error) { return 0, errors.New("connection refused") },
		func(ctx context.Context) (int, error) { return 0, errors.New("timed out") },
	)
	fmt.Println(err)
	// Output:
	// gather: task 0: connection refused
	// gather: task 1: timed out
}

// With Limit(1), MapAny tries the inputs one after another until one succeeds: a
// fallback chain. The mirrors after the first that answers are never asked.
func ExampleMapAny() {
	mirrors := []string{"mirror-a", "mirror-b", "mirror-c"}
	body, err := gather.MapAny(context.Background(), mirrors,
		func(ctx context.Context, mirror string) (string, error) {
			fmt.Println("trying", mirror)
			if mirror == "mirror-a" {
				return "", errors.New("404")
			}
			return "payload from " + mirror, nil
		}, gather.Limit(1))
	fmt.Println(body, err)
	// Output:
	// trying mirror-a
	// trying mirror-b
	// payload from mirror-b <nil>
}

// SetLimit changes a Group's limit while it runs: here a crawler asks one page at a
// time until the site's robots.txt says it may open four connections.
func ExampleGroup_SetLimit() {
	g := gather.NewGroup[string](context.Background(), gather.Limit(1))
	g.Go(func(ctx context.Context) (string, error) {
		g.SetLimit(4) // robots.txt allows four at once: the pages waiting start now
		return "robots.txt", nil
	})
	for _, page := range []string{"/a", "/b", "/c"} {
		g.Go(func(ctx context.Context) (string, error) { return page, nil })
	}
	pages, err := g.Wait()
	fmt.Println(pages, err)
	// Output: [robots.txt /a /b /c] <nil>
}
