package queue

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule says when a periodic task is due (see Scheduler). Every process
// running the same schedule must compute the same ticks: a tick is named
// by its time.
type Schedule interface {
	// Next returns the first tick strictly after t, or the zero time
	// when there is none.
	Next(t time.Time) time.Time
}

// Every returns the schedule that ticks every d, at the multiples of d
// since the zero time.Time (for d dividing a day: at midnight UTC and
// every d after), so that every process agrees on the ticks whenever it
// started. It returns an error wrapping ErrBadInput unless d is at least a
// millisecond.
func Every(d time.Duration) (Schedule, error) {
	if d < time.Millisecond {
		return nil, errorf("%w: Every(%v): want an interval of at least 1ms", ErrBadInput, d)
	}
	return every(d), nil
}

type every time.Duration

func (e every) Next(t time.Time) time.Time { return t.Truncate(time.Duration(e)).Add(time.Duration(e)) }

// Cron returns the schedule of a five-field cron expression, "minute hour
// day-of-month month day-of-week", read in loc (nil means UTC). Each field
// is "*", a number, a range "a-b", any of those with a step "/n", or a
// comma-separated list of them; months are 1-12, days of the week 0-6
// from Sunday (7 is Sunday too). As in Vixie cron, when both day fields
// are restricted a day matching either is due. A local time that a
// daylight-saving change skips is not due; one it repeats is due twice
// (the two are distinct instants). It returns an error wrapping
// ErrBadInput that names the field at fault.
func Cron(expr string, loc *time.Location) (Schedule, error) {
	if loc == nil {
		loc = time.UTC
	}
	f := strings.Fields(expr)
	if len(f) != 5 {
		return nil, errorf("%w: cron expression %q has %d fields: want 5 (minute hour day-of-month month day-of-week)", ErrBadInput, clip(expr), len(f))
	}
	c := &cron{loc: loc}
	specs := []struct {
		name   string
		lo, hi int
		dst    *uint64
	}{{"minute", 0, 59, &c.min}, {"hour", 0, 23, &c.hour}, {"day-of-month", 1, 31, &c.dom}, {"month", 1, 12, &c.month}, {"day-of-week", 0, 7, &c.dow}}
	for i, sp := range specs {
		bits, err := cronField(f[i], sp.lo, sp.hi)
		if err != nil {
			return nil, errorf("%w: cron expression %q, %s field %q: %v", ErrBadInput, clip(expr), sp.name, clip(f[i]), err)
		}
		*sp.dst = bits
	}
	if c.dow&(1<<7) != 0 {
		c.dow |= 1 // 7 is Sunday
	}
	c.domAny, c.dowAny = f[2] == "*", f[4] == "*"
	return c, nil
}

type cron struct {
	min, hour, dom, month, dow uint64 // bit i set: value i is due
	domAny, dowAny             bool
	loc                        *time.Location
}

// cronField parses one field into a bit set over [lo, hi].
func cronField(s string, lo, hi int) (uint64, error) {
	var bits uint64
	for part := range strings.SplitSeq(s, ",") {
		rng, step := part, 1
		if r, st, ok := strings.Cut(part, "/"); ok {
			n, err := strconv.Atoi(st)
			if err != nil || n < 1 || n > hi {
				return 0, fmt.Errorf("step %q: want 1 to %d", st, hi)
			}
			rng, step = r, n
		}
		a, b := lo, hi
		if rng != "*" {
			x, y, isRange := strings.Cut(rng, "-")
			var err error
			if a, err = strconv.Atoi(x); err != nil || a < lo || a > hi {
				return 0, fmt.Errorf("%q: want * or numbers %d to %d", rng, lo, hi)
			}
			b = a
			if isRange {
				if b, err = strconv.Atoi(y); err != nil || b < a || b > hi {
					return 0, fmt.Errorf("range %q: want a-b with %d <= a <= b <= %d", rng, lo, hi)
				}
			} else if step > 1 {
				b = hi // "a/n": from a to the end, as cron reads it
			}
		}
		for v := a; v <= b; v += step {
			bits |= 1 << v
		}
	}
	return bits, nil
}

func (c *cron) dayDue(t time.Time) bool {
	dom, dow := c.dom&(1<<t.Day()) != 0, c.dow&(1<<int(t.Weekday())) != 0
	switch {
	case c.domAny || c.dowAny:
		return dom && dow
	default:
		return dom || dow
	}
}

// Next implements Schedule: field by field, at most about five years on.
func (c *cron) Next(t time.Time) time.Time {
	t = t.In(c.loc).Truncate(time.Minute).Add(time.Minute)
	end := t.AddDate(5, 0, 0)
	for t.Before(end) {
		y, mo, d := t.Date()
		h, mi := t.Hour(), t.Minute()
		switch {
		case c.month&(1<<int(mo)) == 0:
			t = time.Date(y, mo+1, 1, 0, 0, 0, 0, c.loc)
		case !c.dayDue(t):
			t = time.Date(y, mo, d+1, 0, 0, 0, 0, c.loc)
		case c.hour&(1<<h) == 0:
			t = time.Date(y, mo, d, h+1, 0, 0, 0, c.loc)
			if t.Hour() == h { // a repeated hour: step past it
				t = t.Add(time.Hour)
			}
		case c.min&(1<<mi) == 0:
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}
