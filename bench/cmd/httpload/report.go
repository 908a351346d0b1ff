package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

// writeJSON prints r as one JSON line.
func writeJSON(w io.Writer, r *result) {
	b, _ := json.Marshal(r) // a struct of numbers, strings and maps of them
	fmt.Fprintf(w, "%s\n", b)
}

// writeMarkdown prints the table of the phases that ran.
func writeMarkdown(w io.Writer, c *config, rs []*result) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n| phase | tasks | tasks/s | p50 / p99 await | 429s (without Retry-After) | lost | wrong | heap MiB start / middle / end / expired / next | RSS MiB start / middle / end / expired / next (peak) |\n")
	fmt.Fprintf(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rs {
		phase := r.Phase
		switch {
		case r.SSE > 0:
			phase = fmt.Sprintf("%s (%d streams, %.3f× load's tasks/s)", r.Phase, r.SSE, r.VsLoad)
		case r.MaxDepth > 0:
			phase = fmt.Sprintf("%s (bound %d, %.0f s)", r.Phase, r.MaxDepth, r.Seconds)
		}
		if c.rounds > 1 && r.Round > 0 {
			phase += fmt.Sprintf(", round %d", r.Round)
		}
		await := "–"
		if r.P50ms > 0 {
			await = fmt.Sprintf("%.0f / %.0f ms", r.P50ms, r.P99ms)
		}
		var heap, rss string
		var peak float64
		for i, k := range []string{"start", "middle", "end", "expired", "next"} {
			if i > 0 {
				heap += " / "
				rss += " / "
			}
			m, ok := r.Memory[k]
			if !ok {
				heap += "–"
				rss += "–"
				continue
			}
			heap += fmt.Sprintf("%.0f", m.Heap)
			rss += fmt.Sprintf("%.0f", m.RSS)
			peak = max(peak, m.HWM)
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %s | %d (%d) | %d | %d | %s | %s (%.0f) |\n",
			phase, r.Tasks, r.TasksPerSec, await, r.Refused, r.MissingRetryAfter, r.Lost, r.Wrong, heap, rss, peak)
	}
	var ratios []float64
	for _, r := range rs {
		if r.SSE > 0 {
			ratios = append(ratios, r.VsLoad)
		}
	}
	if len(ratios) > 0 {
		slices.Sort(ratios)
		verdict := "met"
		med := ratios[len(ratios)/2]
		if len(ratios)%2 == 0 {
			med = (ratios[len(ratios)/2-1] + ratios[len(ratios)/2]) / 2
		}
		if med < 0.95 {
			verdict = "missed"
		}
		fmt.Fprintf(w, "\nEvent streams open: median tasks/s over the load run's %.3f× over %d rounds (%.3f to %.3f); goal 0.95× or more: %s\n",
			med, len(ratios), ratios[0], ratios[len(ratios)-1], verdict)
	}
	fmt.Fprintf(w, "\n%d worker processes (gather worker), %d producers, batches of %d, serve --result-ttl %v --retention %v; all on 127.0.0.1 TCP\n",
		c.workers, c.producers, c.batch, c.resultTTL, c.retention)
}
