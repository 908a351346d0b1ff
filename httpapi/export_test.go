package httpapi

import (
	"net/http"
	"net/url"
	"time"
)

// Routes returns "METHOD pattern" of every route s serves, for tests.
func Routes(s *Server) []string {
	var out []string
	for _, r := range s.routes() {
		out = append(out, r.method+" "+r.pattern)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.mounted {
		out = append(out, r.method+" "+r.pattern)
	}
	return out
}

// IssueTicket returns a ticket of s that expires at exp, for tests.
func IssueTicket(s *Server, exp time.Time) string { return s.issueTicket(exp) }

// TicketOK reports whether s accepts ticket for a GET of an event stream
// at now, for tests.
func TicketOK(s *Server, ticket string, now time.Time) bool {
	r, _ := http.NewRequest("GET", "/v1/batches/x/events?ticket="+url.QueryEscape(ticket), nil)
	return s.ticketOK(r, "GET /v1/batches/{id}/events", now)
}

// Followed returns how many batches s keeps results of, for tests.
func Followed(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.trackers)
}
