package queue_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zones below, whatever the machine has

	"github.com/gather-go/gather/queue"
)

func TestCron(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		expr string
		loc  *time.Location
		from string
		want []string // the next ticks, in UTC
	}{
		{"*/15 * * * *", nil, "2026-03-02T10:07:30Z", []string{"2026-03-02T10:15:00Z", "2026-03-02T10:30:00Z"}},
		{"0 9 * * 1-5", ny, "2026-03-06T15:00:00Z", []string{"2026-03-09T13:00:00Z", "2026-03-10T13:00:00Z"}}, // Friday 10:00 EST; Monday 9:00 is EDT
		{"0 0 29 2 *", nil, "2026-01-01T00:00:00Z", []string{"2028-02-29T00:00:00Z"}},
		{"0 0 13 * 5", nil, "2026-02-01T00:00:00Z", []string{"2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z"}}, // Fridays, or the 13th
		{"30 2 * * *", ny, "2026-03-07T12:00:00Z", []string{"2026-03-09T06:30:00Z"}},                                                  // 2:30 does not exist on 8 March
		{"30 1 * * *", ny, "2026-11-01T04:00:00Z", []string{"2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"}},  // 1:30 happens twice on 1 November
		{"5 4 * 1,7 0,7", nil, "2026-06-30T00:00:00Z", []string{"2026-07-05T04:05:00Z"}},
		{"0-10/5 12 1 * *", nil, "2026-05-01T12:01:00Z", []string{"2026-05-01T12:05:00Z", "2026-05-01T12:10:00Z", "2026-06-01T12:00:00Z"}},
	} {
		s, err := queue.Cron(c.expr, c.loc)
		if err != nil {
			t.Fatalf("%q: %v", c.expr, err)
		}
		at := utc(c.from)
		for _, w := range c.want {
			at = s.Next(at)
			if !at.Equal(utc(w)) {
				t.Fatalf("%q from %s: got %s, want %s", c.expr, c.from, at.UTC().Format(time.RFC3339), w)
			}
		}
	}
	if s, _ := queue.Cron("0 0 31 2 *", nil); !s.Next(utc("2026-01-01T00:00:00Z")).IsZero() {
		t.Error("31 February: want no tick")
	}
	for _, bad := range []string{"", "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *", "1,,2 * * * *"} {
		if _, err := queue.Cron(bad, nil); !errors.Is(err, queue.ErrBadInput) {
			t.Errorf("Cron(%q) = %v, want ErrBadInput", bad, err)
		}
	}
	if _, err := queue.Cron("* 99 * * *", nil); err == nil || !strings.Contains(err.Error(), "hour field") {
		t.Errorf("a bad hour: %v, want an error naming the hour field", err)
	}
}

func TestEvery(t *testing.T) {
	t.Parallel()
	s, err := queue.Every(15 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 3, 2, 10, 7, 30, 0, time.UTC)
	if got, want := s.Next(from), time.Date(2026, 3, 2, 10, 15, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("Next(%v) = %v, want %v", from, got, want)
	}
	if got := s.Next(s.Next(from)); !got.Equal(time.Date(2026, 3, 2, 10, 30, 0, 0, time.UTC)) {
		t.Fatalf("a tick's next = %v, want 10:30", got)
	}
	if _, err := queue.Every(0); !errors.Is(err, queue.ErrBadInput) {
		t.Errorf("Every(0) = %v, want ErrBadInput", err)
	}
}
