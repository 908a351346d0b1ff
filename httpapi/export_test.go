package httpapi

import "time"

// Routes returns "METHOD pattern" of every route s serves, for tests.
func Routes(s *Server) []string {
	var out []string
	for _, r := range s.routes() {
		out = append(out, r.method+" "+r.pattern)
	}
	return out
}

// IssueTicket returns a ticket of s that expires at exp, for tests.
func IssueTicket(s *Server, exp time.Time) string { return s.issueTicket(exp) }
