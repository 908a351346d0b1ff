// Package md holds what the bench module's table commands (cmd/table,
// cmd/brokertable) share: summarising repeated runs of a benchmark and
// writing figures for Markdown tables.
package md

import (
	"flag"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Stat is the -stat flag: how repeated runs are summarised.
var Stat = flag.String("stat", "median", "how to summarise repeated runs: median or min")

// CheckStat reports a -stat value other than median or min.
func CheckStat() error {
	if *Stat != "median" && *Stat != "min" {
		return fmt.Errorf("-stat is %q: want median or min", *Stat)
	}
	return nil
}

// Summary returns the median of samples, or with -stat min the best of
// them: the smallest, or the largest when higherIsBetter. NaN when there is
// none.
func Summary(samples []float64, higherIsBetter bool) float64 {
	if len(samples) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(samples))
	if *Stat == "min" {
		if higherIsBetter {
			return s[len(s)-1]
		}
		return s[0]
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Num writes v with three significant digits (never in e-notation), whole
// numbers from 100 on, thousands separated; "–" for NaN.
func Num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v == 0:
		return "0"
	case v >= 1000:
		return Group(int64(math.Round(v)))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	d := min(2-int(math.Floor(math.Log10(v))), 9)
	return strconv.FormatFloat(v, 'f', d, 64)
}

// Ratio writes v as Num does, with a times sign; "–" when it is not a number.
func Ratio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return Num(v) + "×"
}

// Group writes n with thousands separators.
func Group(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// Verdict says whether a goal whose figure is v was met.
func Verdict(met bool, v float64) string {
	switch {
	case math.IsNaN(v):
		return "not measured"
	case met:
		return "met"
	}
	return "MISSED"
}
