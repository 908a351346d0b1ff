package demo

import (
	"slices"
	"time"
)

// maxSamples bounds the latencies kept: the percentiles are those of the
// latest maxSamples cuts (about 1.8 hours at 10 cuts a second).
const maxSamples = 1 << 16

// samples keeps the latest latencies in a ring. Not safe for concurrent use.
type samples struct {
	ring []time.Duration
	next int
	n    uint64
}

func (s *samples) add(d time.Duration) {
	if len(s.ring) < maxSamples {
		s.ring = append(s.ring, d)
	} else {
		s.ring[s.next] = d
		s.next = (s.next + 1) % maxSamples
	}
	s.n++
}

// last returns the latest k samples (fewer if there are fewer).
func (s *samples) last(k int) []time.Duration {
	k = min(k, len(s.ring))
	out := make([]time.Duration, 0, k)
	for i := range k {
		j := len(s.ring) - k + i
		if len(s.ring) == maxSamples {
			j = (s.next - k + i + maxSamples) % maxSamples
		}
		out = append(out, s.ring[j])
	}
	return out
}

// percentiles returns the p-th percentiles (0 < p ≤ 100) of ds, nearest
// rank; zeros if ds is empty. ds is sorted in place.
func percentiles(ds []time.Duration, ps ...float64) []time.Duration {
	out := make([]time.Duration, len(ps))
	if len(ds) == 0 {
		return out
	}
	slices.Sort(ds)
	for i, p := range ps {
		r := int(p/100*float64(len(ds))+0.999999) - 1
		out[i] = ds[min(max(r, 0), len(ds)-1)]
	}
	return out
}
