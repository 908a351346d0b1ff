// Command seed runs the seed's first two asyncio.gather examples with gather: three
// sources fetched concurrently with their results in input order, then the same with
// one source failing and every outcome reported.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/gather-go/gather"
)

func fetchData(ctx context.Context, source string, failing string) (string, error) {
	if source == failing {
		return "", errors.New("data fetch failed from " + source)
	}
	select {
	case <-time.After(time.Second): // simulates an asynchronous fetch
		return "Data from " + source, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	sources := []string{"Source A", "Source B", "Source C"}

	// Example 1: asyncio.gather(*tasks); the three fetches overlap, so this takes about
	// one second, not three.
	start := time.Now()
	results, err := gather.Map(ctx, sources, func(ctx context.Context, s string) (string, error) {
		return fetchData(ctx, s, "")
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("Collected data: %q (in %.1fs)\n", results, time.Since(start).Seconds())

	// Example 2: asyncio.gather(*tasks, return_exceptions=True).
	settled := gather.MapSettled(ctx, sources, func(ctx context.Context, s string) (string, error) {
		return fetchData(ctx, s, "Source B")
	})
	for i, r := range settled {
		if r.Err != nil {
			fmt.Printf("Error fetching data from %s: %v\n", sources[i], r.Err)
		} else {
			fmt.Printf("Data from %s: %s\n", sources[i], r.Value)
		}
	}
}
