package queue

import (
	"context"
	"errors"
	"math"
	"time"
)

// GlobalRate caps how many tasks of a queue, or of one kind in it, start
// per second across every worker of every process that shares the broker:
// a token bucket refilled at PerSecond that holds at most Burst tokens,
// one taken as each task starts. Every worker that runs such tasks must be
// given the same rates (a worker without them does not count). Over any
// stretch of time t, at most Burst + PerSecond×t tasks are admitted, and
// each starts within 10 ms of its admission (a runner takes tokens for
// the tasks it will start in the next few milliseconds at once, and gives
// back those it has not used within 10 ms, or when it goes idle): at most
// Burst + PerSecond×(t + 10 ms) start. Tokens given back are the bucket's
// again, so a runner held up (a loaded machine, a slow claim) costs the
// fleet no capacity.
type GlobalRate struct {
	// Queue is the queue limited; required.
	Queue string
	// Kind, when set, limits the tasks of that kind in Queue only; empty
	// limits every task of Queue.
	Kind string
	// PerSecond is the sustained rate; above 0 and at most MaxRate.
	PerSecond float64
	// Burst is how many may start at once after a quiet spell; 0 means 1,
	// at most MaxBurst.
	Burst int
}

// Rate limits: NewWorker refuses a GlobalRate beyond them.
const (
	MaxRate  = 1e9
	MaxBurst = 1 << 20
)

// BucketName is the name of the rate's bucket in the broker's
// RateLimiter, the same in every process: "q:<queue>", or
// "k:<kind>@<queue>".
func (r GlobalRate) BucketName() string {
	return GlobalLimit{Queue: r.Queue, Kind: r.Kind}.name()
}

func (r GlobalRate) burst() int { return max(r.Burst, 1) }

// RateLimiter is the optional interface of brokers that keep token buckets
// shared by every worker, which WorkerConfig.GlobalRates needs.
type RateLimiter interface {
	// TakeTokens takes up to n tokens (n at least 1) from the bucket
	// called name, refilled at rate a second and holding at most burst,
	// and returns how many it took. When it took none it returns how long
	// until one is due. It does not block.
	TakeTokens(ctx context.Context, name string, n int, rate float64, burst int) (took int, wait time.Duration, err error)
	// ReturnTokens gives back n tokens taken from the bucket called name
	// and not used: the bucket holds them again, but never more than a
	// full bucket (see GCRAReturn). It does not block.
	ReturnTokens(ctx context.Context, name string, n int, rate float64) error
}

// GCRA is the token bucket as the generic cell rate algorithm keeps it,
// for brokers implementing RateLimiter: one time per bucket, the
// theoretical arrival time tat (Unix nanoseconds; 0 for a bucket never
// used). Take returns the new tat and how many of n tokens it took at
// now, or the wait until one is due. Every token costs 1/rate seconds of
// tat, and tat may run at most burst tokens ahead of now.
func GCRA(tat int64, now time.Time, n int, rate float64, burst int) (newTAT int64, took int, wait time.Duration) {
	per := max(int64(math.Round(1e9/rate)), 1) // nanoseconds a token
	t := max(tat, now.UnixNano())
	ahead := t - now.UnixNano()              // how far tat runs ahead of now
	room := (int64(burst)*per - ahead) / per // tokens that fit now
	if room < 1 {
		return tat, 0, time.Duration(ahead - int64(burst-1)*per)
	}
	took = int(min(room, int64(n)))
	return t + int64(took)*per, took, 0
}

// GCRAReturn gives n unused tokens back to a bucket kept by GCRA: tat
// moves back n/rate seconds, but not before now (a full bucket holds
// burst tokens whatever was given back).
func GCRAReturn(tat int64, now time.Time, n int, rate float64) int64 {
	per := max(int64(math.Round(1e9/rate)), 1)
	back := int64(n) * per
	if n < 0 || back/per != int64(n) { // overflow: give back everything
		back = math.MaxInt64
	}
	return max(tat-min(back, tat), now.UnixNano())
}

// checkRates validates cfg's GlobalRates against b.
func checkRates(b Broker, rs []GlobalRate, bad func(string, ...any)) {
	if len(rs) == 0 {
		return
	}
	if _, ok := b.(RateLimiter); !ok {
		bad("WorkerConfig.GlobalRates needs a broker that keeps token buckets for every worker: %T does not implement queue.RateLimiter (%v)", b, errors.ErrUnsupported)
	}
	if len(rs) > MaxGlobalLimits {
		bad("WorkerConfig.GlobalRates holds %d rates: want at most %d", len(rs), MaxGlobalLimits)
	}
	seen := map[string]int{}
	for i, r := range rs {
		if r.Queue == "" {
			bad("WorkerConfig.GlobalRates[%d] has no Queue: want the queue it limits", i)
		}
		if !(r.PerSecond > 0 && r.PerSecond <= MaxRate) {
			bad("WorkerConfig.GlobalRates[%d] has PerSecond %v: want above 0 and at most %g", i, r.PerSecond, float64(MaxRate))
		}
		if r.Burst < 0 || r.Burst > MaxBurst {
			bad("WorkerConfig.GlobalRates[%d] has Burst %d: want 0 (meaning 1) to %d", i, r.Burst, MaxBurst)
		}
		if j, dup := seen[r.BucketName()]; dup {
			bad("WorkerConfig.GlobalRates[%d] limits queue %q kind %q again (see [%d]): want one rate each", i, r.Queue, r.Kind, j)
		}
		seen[r.BucketName()] = i
	}
}

// tokenAge is how long a runner keeps rate tokens it took: older ones are
// given back, so that a task starts at most tokenAge after its token was
// taken.
const tokenAge = 10 * time.Millisecond

// rateStock is a runner's stock of one rate's tokens.
type rateStock struct {
	n   int       // tokens in stock
	at  time.Time // when they were taken
	ask int       // how many to ask for next, besides the claim's rest
}

// takeTokens takes a token of every rate that d is under, from the
// runner's stock, refilled from the broker with about as many tokens as
// the runner used in the last tokenAge (doubling while the stock runs out
// within half of it, halving when tokens are left at its end; at most the
// burst): about one broker call a tokenAge while the rate is not reached,
// and one token a call for tasks slower than tokenAge, so that a runner
// never sits on tokens others could use. While a bucket is empty it
// waits. It reports false when the worker stopped meanwhile: d was handed
// back.
func (s *slot) takeTokens(ctx context.Context, d *Delivery) bool {
	w := s.w
	rl := w.b.(RateLimiter)
	if s.tokens == nil {
		s.tokens = make([]rateStock, len(w.rates))
	}
	for i := range w.rates {
		r := &w.rates[i]
		if r.Queue != d.Queue || r.Kind != "" && r.Kind != d.Kind {
			continue
		}
		st := &s.tokens[i]
		if st.n > 0 && time.Since(st.at) > tokenAge {
			s.returnTokens(ctx, i) // asked for more than the runner used
			st.ask /= 2
		}
		for st.n == 0 {
			t0 := time.Now()
			if !st.at.IsZero() && t0.Sub(st.at) < tokenAge/2 {
				// The stock ran out within half its age: ask for more.
				st.ask = min(2*max(st.ask, 1), r.burst())
			}
			took, wait, err := rl.TakeTokens(ctx, w.bucketNames[i], min(max(st.ask, 1), r.burst()), r.PerSecond, r.burst())
			s.completing += time.Since(t0) // a broker wait (see takeSlots)
			if err != nil {
				w.log.Error("taking rate tokens", "rate", w.bucketNames[i], "err", err)
				wait = time.Second
			}
			if took > 0 {
				st.n, st.at = took, time.Now()
				break
			}
			st.at = time.Time{}
			s.flush(ctx) // outcomes held for batching go out before a wait
			if !s.pause(max(wait, time.Millisecond)) {
				if err := w.b.Retry(ctx, d, time.Time{}, nil); err != nil {
					w.log.Error("handing a task back", "task", d.ID(), "err", err)
				}
				return false
			}
		}
		st.n--
	}
	return true
}

// dropTokens gives the runner's stock back when it goes idle.
func (s *slot) dropTokens(ctx context.Context) {
	for i := range s.tokens {
		s.returnTokens(ctx, i)
	}
}

// returnTokens gives the stock of rate i back to the broker.
func (s *slot) returnTokens(ctx context.Context, i int) {
	st := &s.tokens[i]
	if st.n == 0 {
		return
	}
	w := s.w
	r := &w.rates[i]
	t0 := time.Now()
	if err := w.b.(RateLimiter).ReturnTokens(ctx, w.bucketNames[i], st.n, r.PerSecond); err != nil {
		w.log.Warn("giving rate tokens back", "rate", w.bucketNames[i], "err", err) // lost: the rate is lower a moment
	}
	s.completing += time.Since(t0)
	st.n = 0
}
