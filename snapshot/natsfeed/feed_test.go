package natsfeed_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gather-go/gather/snapshot"
	"github.com/gather-go/gather/snapshot/natsfeed"
)

var base = time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)

func at(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }

func publisher(t *testing.T, nc *nats.Conn, cfg natsfeed.PublisherConfig[int]) *natsfeed.Publisher[int] {
	t.Helper()
	p, err := natsfeed.NewPublisher(nc, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func feed(t *testing.T, nc *nats.Conn, cfg natsfeed.Config[int]) *natsfeed.Feed[int] {
	t.Helper()
	f, err := natsfeed.Start(nc, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A lost update leaves a gap; the feed asks the publisher to resend it over
// request/reply, the answer fills the gap and the cut completes.
func TestGapIsResentAndCutCompletes(t *testing.T) {
	t.Parallel()
	ncs := connect(t, 2)
	var mu sync.Mutex
	var asked []string
	p := publisher(t, ncs[0], natsfeed.PublisherConfig[int]{Prefix: "t.gap", Source: "A",
		OnResend: func(r *natsfeed.ResendRequest) {
			mu.Lock()
			asked = append(asked, fmt.Sprintf("%d-%d", r.First, r.Last))
			mu.Unlock()
			r.Answer()
		}})
	f := feed(t, ncs[1], natsfeed.Config[int]{Prefix: "t.gap",
		Snapshot: &snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "A"}}}})
	<-f.Ready() // the publisher had nothing: A starts from seq 1
	var ms []natsfeed.Message
	for i, k := range []string{"x", "y", "x"} {
		m, err := p.Record(k, 10+i, at(i+1))
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	for _, m := range []natsfeed.Message{ms[0], ms[2]} { // seq 2 is lost
		if err := p.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Heartbeat(at(5)); err != nil {
		t.Fatal(err)
	}
	cut, err := f.Collector().At(ctxT(t), at(5))
	if err != nil {
		t.Fatalf("cut after the resend: %v", err)
	}
	x, _ := cut.Get("A", "x")
	y, _ := cut.Get("A", "y")
	if x != 12 || y != 11 {
		t.Errorf("cut holds x=%d y=%d, want x=12 y=11", x, y)
	}
	mu.Lock()
	got := strings.Join(asked, ",")
	mu.Unlock()
	if got != "2-2" {
		t.Errorf("resend requests %q, want 2-2", got)
	}
	waitFor(t, "the resend reply", func() bool { return f.Stats().Answered == 1 })
	if st := f.Stats(); st.Resends != 1 || st.Resent != 1 {
		t.Errorf("stats %+v: want one resend asked and one update resent", st)
	}
}

// A source that stops sending is reported silent, by name and since when,
// while the other source's part is current.
func TestSilentSourceIsReportedSilent(t *testing.T) {
	t.Parallel()
	ncs := connect(t, 3)
	var now atomic.Int64
	now.Store(base.UnixNano())
	a := publisher(t, ncs[0], natsfeed.PublisherConfig[int]{Prefix: "t.silent", Source: "A"})
	b := publisher(t, ncs[1], natsfeed.PublisherConfig[int]{Prefix: "t.silent", Source: "B"})
	f := feed(t, ncs[2], natsfeed.Config[int]{Prefix: "t.silent", Snapshot: &snapshot.Config[string, int]{
		Sources:     []snapshot.Source{{Name: "A"}, {Name: "B"}},
		SilentAfter: time.Second,
		Now:         func() time.Time { return time.Unix(0, now.Load()) },
	}})
	<-f.Ready()
	if _, err := b.Publish("y", 1, at(1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Heartbeat(at(2)); err != nil {
		t.Fatal(err)
	}
	// B falls silent; A goes on.
	for i := range 5 {
		if _, err := a.Publish("x", i, at(10*i+1)); err != nil {
			t.Fatal(err)
		}
		if err := a.Heartbeat(at(10*i + 5)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every message to be applied", func() bool {
		st := f.Stats()
		return st.Updates == 6 && st.Heartbeats == 6
	})
	now.Add(int64(2 * time.Second))
	cut, err := f.Collector().Cut(at(30))
	if err != nil {
		t.Fatal(err)
	}
	if cut.Complete() {
		t.Fatalf("cut %v is complete although B fell silent at 2ms", cut)
	}
	if st, _ := cut.Status("A"); st.State != snapshot.Current {
		t.Errorf("A is %v, want current", st)
	}
	st, _ := cut.Status("B")
	if st.State != snapshot.Silent {
		t.Fatalf("B is %v, want silent", st)
	}
	if want := base; !st.Since.Equal(want) {
		t.Errorf("B silent since %v, want %v (the fake clock when it was last heard)", st.Since, want)
	}
	if err := cut.Err(); !errors.Is(err, snapshot.ErrIncomplete) || !strings.Contains(err.Error(), `"B" silent since`) {
		t.Errorf("cut.Err() = %v, want it to name B silent", err)
	}
}

// A feed that joins after the source has been publishing starts from the
// source's image, and applies what follows from there without a resend.
func TestLateJoinerStartsFromImage(t *testing.T) {
	t.Parallel()
	ncs := connect(t, 2)
	p := publisher(t, ncs[0], natsfeed.PublisherConfig[int]{Prefix: "t.late", Source: "A"})
	for i := range 50 {
		if _, err := p.Publish(fmt.Sprintf("k%d", i%10), i, at(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ncs[0].Flush(); err != nil { // all 50 at the server before the feed subscribes
		t.Fatal(err)
	}
	f := feed(t, ncs[1], natsfeed.Config[int]{Prefix: "t.late",
		Snapshot: &snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "A"}}}})
	<-f.Ready()
	if st := f.Stats(); st.Images != 1 {
		t.Fatalf("stats %+v once ready: want one image", st)
	}
	for i := 50; i < 60; i++ {
		if _, err := p.Publish(fmt.Sprintf("k%d", i%10), i, at(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Heartbeat(at(100)); err != nil {
		t.Fatal(err)
	}
	cut, err := f.Collector().At(ctxT(t), at(100))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if v, ok := cut.Get("A", fmt.Sprintf("k%d", i)); !ok || v != 50+i {
			t.Errorf("k%d = %d, %v; want %d", i, v, ok, 50+i)
		}
	}
	if st := f.Stats(); st.Resends != 0 || st.Updates != 10 {
		t.Errorf("stats %+v: want the 10 updates after the image and no resend", st)
	}
}

// A gap older than the publisher keeps is refused; the feed then installs an
// image and the cut completes.
func TestResendRefusedFallsBackToImage(t *testing.T) {
	t.Parallel()
	ncs := connect(t, 2)
	p := publisher(t, ncs[0], natsfeed.PublisherConfig[int]{Prefix: "t.old", Source: "A", History: 4})
	f := feed(t, ncs[1], natsfeed.Config[int]{Prefix: "t.old", NoImage: true,
		Snapshot: &snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "A"}}}})
	var last natsfeed.Message
	for i := range 10 {
		m, err := p.Record(fmt.Sprintf("k%d", i), i, at(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := p.Send(m); err != nil {
				t.Fatal(err)
			}
		}
		last = m
	}
	if err := p.Send(last); err != nil { // 2-9 lost; only 7-10 are kept
		t.Fatal(err)
	}
	if err := p.Heartbeat(at(20)); err != nil {
		t.Fatal(err)
	}
	cut, err := f.Collector().At(ctxT(t), at(20))
	if err != nil {
		t.Fatal(err)
	}
	if n := cut.Len("A"); n != 10 {
		t.Errorf("cut holds %d keys, want 10", n)
	}
	// The image completes the cut before the feed counts it.
	waitFor(t, "the image to be counted", func() bool { return f.Stats().Images == 1 })
}

func TestConfigErrorsSayWhatIsAccepted(t *testing.T) {
	t.Parallel()
	ncs := connect(t, 1)
	for _, tc := range []struct {
		name string
		cfg  *natsfeed.Config[int]
		want []string
	}{
		{"nil", nil, []string{"needs Config.Snapshot"}},
		{"no sources", &natsfeed.Config[int]{Snapshot: &snapshot.Config[string, int]{}}, []string{"Sources"}},
		{"bad names", &natsfeed.Config[int]{Prefix: "a..b", RequestTimeout: -1, Snapshot: &snapshot.Config[string, int]{
			Sources: []snapshot.Source{{Name: "X.Y"}, {Name: "Z*"}}}},
			[]string{`prefix "a..b" has an empty token`, `"X.Y" holds a '.'`, `"Z*" holds a wildcard`, "RequestTimeout is -1ns"}},
	} {
		_, err := natsfeed.Start(ncs[0], tc.cfg)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, w)
			}
		}
	}
	if _, err := natsfeed.NewPublisher(ncs[0], &natsfeed.PublisherConfig[int]{Source: "a b", History: -1}); err == nil ||
		!strings.Contains(err.Error(), "space") || !strings.Contains(err.Error(), "History is -1") {
		t.Errorf("NewPublisher error %v, want it to name the space and History", err)
	}
	p := publisher(t, ncs[0], natsfeed.PublisherConfig[int]{Source: "A"})
	if _, err := p.Publish("k", 1, at(5)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish("k", 1, at(4)); err == nil || !strings.Contains(err.Error(), "never go backwards") {
		t.Errorf("publishing back in time: %v", err)
	}
	if _, err := p.Publish("k.>", 1, at(6)); err == nil || !strings.Contains(err.Error(), "wildcard") {
		t.Errorf("publishing a wildcard key: %v", err)
	}
	if _, err := p.Resend(3, 9); err == nil || !strings.Contains(err.Error(), "only 1 updates were recorded") {
		t.Errorf("resend beyond the last: %v", err)
	}
}

// With no publisher to answer the image request, a source starts from its
// first update once one comes.
func TestNoPublisherStartsFromFirstUpdate(t *testing.T) {
	t.Parallel()
	ncs := connect(t, 2)
	f := feed(t, ncs[1], natsfeed.Config[int]{Prefix: "t.none",
		Snapshot: &snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "A"}}}})
	<-f.Ready()
	p := publisher(t, ncs[0], natsfeed.PublisherConfig[int]{Prefix: "t.none", Source: "A"})
	if _, err := p.Publish("x", 7, at(1)); err != nil {
		t.Fatal(err)
	}
	if err := p.Heartbeat(at(2)); err != nil {
		t.Fatal(err)
	}
	cut, err := f.Collector().At(ctxT(t), at(2))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := cut.Get("A", "x"); !ok || v != 7 {
		t.Errorf("x = %d, %v; want 7", v, ok)
	}
	if st := f.Stats(); st.Images != 0 || st.Resends != 0 {
		t.Errorf("stats %+v: want neither an image nor a resend", st)
	}
}
