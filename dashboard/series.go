package dashboard

import (
	"math"
	"time"
)

// point is one second of a queue's activity: what the charts draw.
type point struct {
	t                       int64 // unix seconds at the end of the second
	done, failed, enqueued  uint32
	runP50, runP99, waitP99 float32 // milliseconds; NaN for none
}

// series is a ring of one queue's points over the last History, with the
// counts of the previous sample to take differences from. Only the
// dashboard's goroutine touches it.
type series struct {
	pts      []point
	head, n  int
	prev     totals
	prevRun  [histBuckets]uint64
	prevWait [histBuckets]uint64
	curRun   [histBuckets]uint64
	curWait  [histBuckets]uint64
}

func newSeries(n int) *series { return &series{pts: make([]point, n)} }

// sample adds the point of the time since the previous sample (or since
// the queue's counters were made, for the first), from c's counts now.
func (s *series) sample(now time.Time, c *counters) {
	t := c.totals()
	c.run.snapshot(&s.curRun)
	c.wait.snapshot(&s.curWait)
	{
		p := point{
			t:        now.Unix(),
			done:     uint32(min(t.Succeeded-s.prev.Succeeded, math.MaxUint32)),
			failed:   uint32(min(t.Failed-s.prev.Failed, math.MaxUint32)),
			enqueued: uint32(min(t.Enqueued-s.prev.Enqueued, math.MaxUint32)),
			runP50:   ms(quantile(&s.curRun, &s.prevRun, 0.50)),
			runP99:   ms(quantile(&s.curRun, &s.prevRun, 0.99)),
			waitP99:  ms(quantile(&s.curWait, &s.prevWait, 0.99)),
		}
		s.pts[(s.head+s.n)%len(s.pts)] = p
		if s.n < len(s.pts) {
			s.n++
		} else {
			s.head = (s.head + 1) % len(s.pts)
		}
	}
	s.prev, s.prevRun, s.prevWait = t, s.curRun, s.curWait
}

func ms(d time.Duration, ok bool) float32 {
	if !ok {
		return float32(math.NaN())
	}
	return float32(d.Seconds() * 1000)
}

// seriesJSON is a queue's chart data, column by column, oldest first;
// latencies are null for seconds without a task.
type seriesJSON struct {
	T        []int64    `json:"t"`
	Done     []uint32   `json:"done"`
	Failed   []uint32   `json:"failed"`
	Enqueued []uint32   `json:"enqueued"`
	RunP50   []*float32 `json:"run_p50_ms"`
	RunP99   []*float32 `json:"run_p99_ms"`
	WaitP99  []*float32 `json:"wait_p99_ms"`
}

func (s *series) json() seriesJSON {
	out := seriesJSON{
		T: make([]int64, s.n), Done: make([]uint32, s.n), Failed: make([]uint32, s.n), Enqueued: make([]uint32, s.n),
		RunP50: make([]*float32, s.n), RunP99: make([]*float32, s.n), WaitP99: make([]*float32, s.n),
	}
	num := func(f float32) *float32 {
		if f != f {
			return nil
		}
		f = float32(math.Round(float64(f)*1000) / 1000)
		return &f
	}
	for i := range s.n {
		p := &s.pts[(s.head+i)%len(s.pts)]
		out.T[i], out.Done[i], out.Failed[i], out.Enqueued[i] = p.t, p.done, p.failed, p.enqueued
		out.RunP50[i], out.RunP99[i], out.WaitP99[i] = num(p.runP50), num(p.runP99), num(p.waitP99)
	}
	return out
}
