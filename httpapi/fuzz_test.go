package httpapi_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gather-go/gather/httpapi"
)

// FuzzPostBatch sends arbitrary bodies to POST /v1/batches: every answer
// is a success or a problem with a 4xx status and a code, never a 5xx or
// a panic.
func FuzzPostBatch(f *testing.F) {
	for _, s := range []string{
		`{"kind":"echo","items":[1,"a",{"b":null}]}`,
		`{"kind":"echo","items":[1],"options":{"timeout":"1s","max_attempts":2,"priority":"high"}}`,
		`{"kind":"gate","items":[1],"mode":"all","queue":"q"}`,
		`{"kind":"echo","items":[1],"options":{"idempotency_key":"k","idempotency_window":"1h"}}`,
		`{"kind":"exec","items":[{}]}`, `{"items":[]}`, `[]`, `null`, `{"kind":"echo","items":[1]}x`,
	} {
		f.Add([]byte(s))
	}
	e := newEnv(f, opts{workers: -1}) // shared by every input
	f.Fuzz(func(t *testing.T, body []byte) {
		e.t = t
		r := e.do("POST", "/v1/batches", string(body))
		switch {
		case r.status == 201:
		case r.status >= 400 && r.status < 500 && r.status != 401 && r.status != 403:
			var p struct{ Code, Detail string }
			if err := json.Unmarshal(r.body, &p); err != nil || p.Code == "" || p.Detail == "" {
				t.Fatalf("%d %q: not a problem: %v", r.status, r.body, err)
			}
		default:
			t.Fatalf("%q: %d %s", body, r.status, r.body)
		}
	})
}

// FuzzTicket: no string but one the server issued, before it expires,
// opens an event stream.
func FuzzTicket(f *testing.F) {
	e := newEnv(f, opts{token: "tok", workers: -1})
	now := time.Now()
	good := httpapi.IssueTicket(e.api, now.Add(time.Minute))
	f.Add(good)
	f.Add(httpapi.IssueTicket(e.api, now.Add(-time.Minute)))
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, ticket string) {
		if httpapi.TicketOK(e.api, ticket, now) != (ticket == good) {
			t.Fatalf("ticket %q: accepted %v", ticket, !(ticket == good))
		}
	})
}
