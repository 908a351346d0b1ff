package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/httpapi"
)

// TestTickets checks that a ticket opens event streams, of the server's
// token, until it expires, and nothing else.
func TestTickets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{token: "tok"})
	r := e.do("POST", "/v1/batches?wait=30s", `{"kind":"echo","items":[1]}`)
	var b struct{ ID string }
	if err := json.Unmarshal(r.body, &b); err != nil || r.status != 200 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	r = e.do("POST", "/v1/tickets", "")
	var tk struct {
		Ticket  string
		Expires time.Time
	}
	if err := json.Unmarshal(r.body, &tk); err != nil || r.status != 201 || tk.Ticket == "" || time.Until(tk.Expires) > httpapi.TicketTTL {
		t.Fatalf("POST /v1/tickets: %d %s", r.status, r.body)
	}
	other := newEnv(t, opts{token: "another", workers: -1})
	events := "/v1/batches/" + b.ID + "/events?ticket="
	noAuth := []string{"Authorization", ""}
	for _, c := range []struct {
		name, method, path string
		want               int
	}{
		{"a ticket opens an event stream", "GET", events + tk.Ticket, 200},
		{"an expired ticket", "GET", events + httpapi.IssueTicket(e.api, time.Now().Add(-time.Second)), 401},
		{"another token's ticket", "GET", events + httpapi.IssueTicket(other.api, time.Now().Add(time.Minute)), 401},
		{"a forged ticket", "GET", events + strings.Repeat("A", len(tk.Ticket)), 401},
		{"a ticket for a status", "GET", "/v1/batches/" + b.ID + "?ticket=" + tk.Ticket, 401},
		{"a ticket for a cancel", "POST", "/v1/batches/" + b.ID + "/cancel?ticket=" + tk.Ticket, 401},
		{"a ticket for a status whose id ends in /events", "GET", "/v1/batches/" + b.ID + "%2Fevents?ticket=" + tk.Ticket, 401},
		{"a ticket for a dead letter named events", "GET", "/v1/dead-letters/events?ticket=" + tk.Ticket, 401},
		{"a ticket for a ticket", "POST", "/v1/tickets?ticket=" + tk.Ticket, 401},
	} {
		r := e.do(c.method, c.path, "", noAuth...)
		if r.status != c.want {
			t.Errorf("%s: %s %s: %d %s, want %d", c.name, c.method, c.path, r.status, r.body, c.want)
		}
		if c.want == 200 && !strings.Contains(string(r.body), "event: end") {
			t.Errorf("%s: the stream %q lacks its end", c.name, r.body)
		}
	}
}
