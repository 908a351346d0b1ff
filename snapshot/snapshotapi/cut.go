package snapshotapi

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/gather-go/gather/snapshot"
)

// cutJSON is a cut as the routes answer it.
type cutJSON struct {
	Collector string                                `json:"collector"`
	Time      time.Time                             `json:"time"`
	Seq       uint64                                `json:"seq"`
	Revision  int                                   `json:"revision"`
	Complete  bool                                  `json:"complete"`
	Taken     time.Time                             `json:"taken"`
	Skipped   int                                   `json:"skipped,omitempty"`
	Sources   []statusJSON                          `json:"sources"`
	Values    map[string]map[string]json.RawMessage `json:"values"`
}

// statusJSON is one source's status in a cut; Reason says in words why a
// source is not current ("stale by 250ms", "gapped: missing 4-6 ...").
type statusJSON struct {
	Source       string              `json:"source"`
	Required     bool                `json:"required"`
	State        string              `json:"state"`
	Reason       string              `json:"reason,omitempty"`
	Seq          uint64              `json:"seq"`
	Through      uint64              `json:"through,omitempty"`
	Passed       *time.Time          `json:"passed,omitempty"`
	Lag          string              `json:"lag,omitempty"`
	LagNS        int64               `json:"lag_ns,omitempty"`
	Since        *time.Time          `json:"since,omitempty"`
	MissingJSON  []map[string]uint64 `json:"missing,omitempty"`
	MissingCount uint64              `json:"missing_count,omitempty"`
	Buffered     int                 `json:"buffered,omitempty"`
	Error        string              `json:"error,omitempty"`
	Duplicates   uint64              `json:"duplicates,omitempty"`
	Late         uint64              `json:"late,omitempty"`
}

func encodeCut(name string, cut *snapshot.Cut[string, json.RawMessage]) *cutJSON {
	out := &cutJSON{
		Collector: name, Time: cut.Time(), Seq: cut.Seq(), Revision: cut.Revision(), Complete: cut.Complete(),
		Taken: cut.Taken().UTC(), Values: map[string]map[string]json.RawMessage{},
	}
	for _, st := range cut.Sources() {
		sj := statusJSON{
			Source: st.Source, Required: st.Required, State: strings.ReplaceAll(st.State.String(), " ", "_"),
			Seq: st.Seq, Through: st.Through, MissingCount: st.MissingCount, Buffered: st.Buffered,
			Duplicates: st.Duplicates, Late: st.Late,
		}
		if st.State != snapshot.Current {
			sj.Reason = strings.TrimPrefix(st.String(), `"`+st.Source+`" `)
		}
		if !st.Passed.IsZero() {
			p := st.Passed
			sj.Passed = &p
		}
		if st.Lag > 0 {
			sj.Lag, sj.LagNS = st.Lag.String(), int64(st.Lag)
		}
		if !st.Since.IsZero() {
			s := st.Since
			sj.Since = &s
		}
		for _, m := range st.Missing {
			sj.MissingJSON = append(sj.MissingJSON, map[string]uint64{"first": m.First, "last": m.Last})
		}
		if st.Err != nil {
			sj.Error = st.Err.Error()
		}
		out.Sources = append(out.Sources, sj)
		vals := map[string]json.RawMessage{}
		for k, v := range cut.All(st.Source) {
			vals[k] = v
		}
		out.Values[st.Source] = vals
	}
	return out
}

func slicesSortByName(specs []Spec) {
	slices.SortFunc(specs, func(a, b Spec) int { return strings.Compare(a.Name, b.Name) })
}
