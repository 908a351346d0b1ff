package dashboard

import (
	"fmt"
	"sync"
	"time"

	"github.com/gather-go/gather/snapshot"
)

// SnapshotSource is a named snapshot collector as the dashboard shows it:
// the latest cut, complete or which sources hold it back and why, and a
// table of values (such as consolidated quotes). Implement it over a
// snapshot.Collector with CutView. The dashboard calls Snapshot from its
// own goroutine after Changed's channel closes, at most once a frame; both
// methods must be safe for concurrent use.
type SnapshotSource interface {
	// Snapshot returns the latest cut. It must be quick (it is called on
	// the dashboard's goroutine) and the view must not be changed after.
	Snapshot() SnapshotView
	// Changed returns a channel that is closed once a cut newer than the
	// one the last Snapshot returned exists (at once, if it does already).
	Changed() <-chan struct{}
}

// SnapshotView is one collector's latest cut, ready to encode as JSON.
type SnapshotView struct {
	Name     string       `json:"name"`
	Time     time.Time    `json:"time"`  // the cut's event time
	Taken    time.Time    `json:"taken"` // when it was taken
	Seq      uint64       `json:"seq"`
	Complete bool         `json:"complete"`
	Sources  []SourceView `json:"sources"`
	// Table, when set, is shown under the sources: Columns names each
	// Rows entry's cells, which are shown as they are.
	Table *Table `json:"table,omitempty"`
}

// Table is a table of text cells, such as a consolidated quote per symbol.
type Table struct {
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
}

// SourceView is one source's state in a cut (see snapshot.SourceStatus).
type SourceView struct {
	Name     string `json:"name"`
	Required bool   `json:"required"`
	// State is snapshot.State's name: current, stale, silent, gapped,
	// resetting, never heard, invalid or awaiting image.
	State string `json:"state"`
	// Reason says why the source holds the cut back, in a few words
	// (stale by how much, silent since when, gapped with the missing
	// range); "" when it does not.
	Reason string `json:"reason,omitempty"`
	// LagMS is how far the source's progress is behind the cut's time,
	// in milliseconds.
	LagMS float64 `json:"lag_ms"`
	// Since is when a silent source was last heard from.
	Since        time.Time `json:"since,omitzero"`
	Missing      string    `json:"missing,omitempty"` // the missing sequence ranges, "4-6,9"
	MissingCount uint64    `json:"missing_count,omitempty"`
	Buffered     int       `json:"buffered,omitempty"`
}

// CutView returns the view of cut c of the collector named name, without
// a table: each source's state, and the reason of those that are not
// current. A nil cut is a view of nothing yet.
func CutView[K comparable, V any](name string, c *snapshot.Cut[K, V]) SnapshotView {
	v := SnapshotView{Name: name, Sources: []SourceView{}}
	if c == nil {
		return v
	}
	v.Time, v.Taken, v.Seq, v.Complete = c.Time(), c.Taken(), c.Seq(), c.Complete()
	for _, s := range c.Sources() {
		sv := SourceView{Name: s.Source, Required: s.Required, State: s.State.String(),
			LagMS: float64(s.Lag) / float64(time.Millisecond), Since: s.Since,
			MissingCount: s.MissingCount, Buffered: s.Buffered}
		for i, r := range s.Missing {
			if i > 0 {
				sv.Missing += ","
			}
			if r.First == r.Last {
				sv.Missing += fmt.Sprint(r.First)
			} else {
				sv.Missing += fmt.Sprintf("%d-%d", r.First, r.Last)
			}
		}
		if s.State != snapshot.Current {
			sv.Reason = s.String()
		}
		v.Sources = append(v.Sources, sv)
	}
	return v
}

// LatestSnapshot is a SnapshotSource that shows the view last Set: the
// simplest way to put a collector on the dashboard, by calling Set with
// CutView (and a table, if any) after each cut. The zero value shows an
// empty view until the first Set. It is safe for concurrent use; Set costs
// a lock and, when someone waits, a channel close.
type LatestSnapshot struct {
	mu      sync.Mutex
	view    SnapshotView
	changed chan struct{} // closed by the next Set; nil until someone waits
	set     bool          // Set was called since the last Snapshot
}

// Set makes v the view shown. v must not be changed after.
func (l *LatestSnapshot) Set(v SnapshotView) {
	l.mu.Lock()
	l.view, l.set = v, true
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	l.mu.Unlock()
}

// Snapshot implements SnapshotSource.
func (l *LatestSnapshot) Snapshot() SnapshotView {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.set = false
	return l.view
}

// Changed implements SnapshotSource.
func (l *LatestSnapshot) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.set {
		return closedChan
	}
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.changed
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()
