package httpapi_test

import (
	"net/url"
	"strings"
	"testing"
)

func TestInspectorEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{}) // membroker, a queue.Inspector
	ids := make([]string, 3)
	for i := range ids {
		ids[i] = e.do("POST", "/v1/batches", `{"kind":"gate","items":[1,2],"queue":"q`+string(rune('a'+i%2))+`"}`).json(t)["id"].(string)
	}
	// Running: states from the broker.
	r := e.do("GET", "/v1/batches/"+ids[0]+"?states=true", "")
	if r.status != 202 || !strings.Contains(string(r.body), `"states":["`) {
		t.Fatalf("states: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/v1/queues", "")
	if r.status != 200 || !strings.Contains(string(r.body), `{"name":"qa","depth":{`) || !strings.Contains(string(r.body), `"in_flight":`) {
		t.Fatalf("queues: %d %s", r.status, r.body)
	}
	// Pages of two, then one; a filter by queue.
	r = e.do("GET", "/v1/batches?limit=2", "")
	m := r.json(t)
	next, _ := m["next"].(string)
	if r.status != 200 || len(m["batches"].([]any)) != 2 || next == "" {
		t.Fatalf("page 1: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/v1/batches?limit=2&after="+url.QueryEscape(next), "")
	if m = r.json(t); len(m["batches"].([]any)) != 1 || m["next"] != nil {
		t.Fatalf("page 2: %s", r.body)
	}
	r = e.do("GET", "/v1/batches?queue=qb", "")
	if m = r.json(t); len(m["batches"].([]any)) != 1 || !strings.Contains(string(r.body), ids[1]) {
		t.Fatalf("queue qb: %s", r.body)
	}
	if r = e.do("GET", "/v1/batches?state=gone", ""); r.status != 400 {
		t.Fatalf("bad state: %d %s", r.status, r.body)
	}
	e.openGate()
	r = e.do("GET", "/v1/batches/"+ids[2]+"?wait=30s&states=true", "")
	if r.status != 200 || !strings.Contains(string(r.body), `"states":["done","done"]`) {
		t.Fatalf("finished: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/v1/batches?state=finished&queue=qa", "")
	if !strings.Contains(string(r.body), ids[2]) {
		t.Fatalf("finished batches: %s", r.body)
	}
	// Dead letters through FindDeadLetters.
	e.do("POST", "/v1/batches?wait=30s", `{"kind":"sleep","items":[{"duration":"1ms","fail":"disk on fire"}],"options":{"max_attempts":1}}`)
	r = e.do("GET", "/v1/dead-letters?error=fire", "")
	if r2 := e.do("GET", "/v1/dead-letters?kind=echo", ""); !strings.Contains(string(r2.body), `"dead_letters":[]`) {
		t.Fatalf("dead letters of another kind: %s", r2.body)
	}
	if r.status != 200 || strings.Count(string(r.body), `"kind":"sleep"`) != 1 || !strings.Contains(string(r.body), "disk on fire") {
		t.Fatalf("dead letters: %s", r.body)
	}
}
