package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strings"
	"time"
)

// Tickets let a browser's EventSource, which cannot send an Authorization
// header, open an event stream of a server with a token: the page asks
// POST /v1/tickets with its bearer token and opens the stream with
// ?ticket=. A ticket is the expiry and an HMAC of it under a key derived
// from the token, so that it needs no state, is good on every server that
// shares the token, and dies with a change of token. It is accepted only
// for GET requests of event streams (paths ending in /events), only until
// it expires (TicketTTL after it was issued), and is checked when the
// stream opens: a stream outlives its ticket, a reconnection needs a new
// one.
//
// A cookie set by a login POST would also reach EventSource, but a cookie
// is ambient authority: every request the browser sends to this origin,
// including state-changing POSTs prompted by another site of the same site,
// would carry it, and the API would rest on its cross-origin guard alone. A
// ticket authorizes reading event streams for a minute and nothing else.

// TicketTTL is how long a ticket opens event streams after it was issued.
const TicketTTL = time.Minute

const ticketLabel = "gather event-stream ticket v1"

func (s *Server) ticketKey() []byte {
	m := hmac.New(sha256.New, s.token)
	m.Write([]byte(ticketLabel))
	return m.Sum(nil)
}

// issueTicket returns a ticket that expires at exp.
func (s *Server) issueTicket(exp time.Time) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(exp.Unix()))
	m := hmac.New(sha256.New, s.ticketKey())
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ticketOK reports whether r, which the mux matched to pattern, may pass
// the token check with a ticket: a GET of an event stream (a route whose
// pattern ends in /events, or a path of Config.UI that does) whose ?ticket=
// is one this server (or one with the same token) issued and that has not
// expired. The pattern, not the path, says what is served: a path ending
// in %2Fevents is another route's.
func (s *Server) ticketOK(r *http.Request, pattern string, now time.Time) bool {
	stream := strings.HasSuffix(pattern, "/events") || pattern == "" && strings.HasSuffix(r.URL.Path, "/events")
	if r.Method != http.MethodGet || !stream {
		return false
	}
	t := r.URL.Query().Get("ticket")
	if t == "" || len(t) > 64 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil || len(b) != 24 {
		return false
	}
	m := hmac.New(sha256.New, s.ticketKey())
	m.Write(b[:8])
	if subtle.ConstantTimeCompare(m.Sum(nil)[:16], b[8:]) != 1 {
		return false
	}
	return now.Unix() <= int64(binary.BigEndian.Uint64(b[:8]))
}

// postTicket issues a ticket for event streams (see TicketTTL).
func (s *Server) postTicket(w http.ResponseWriter, r *http.Request) error {
	exp := time.Now().Add(TicketTTL)
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusCreated, struct {
		Ticket  string    `json:"ticket"`
		Expires time.Time `json:"expires"`
	}{s.issueTicket(exp), exp.UTC().Truncate(time.Second)})
}

type authKey struct{}

// Authenticated reports whether the request passed the server's token
// check: it carried the token or a ticket, or the server has no token. A
// Config.UI handler asks it before it serves anything that is not public;
// for any other request it reports false.
func Authenticated(r *http.Request) bool {
	ok, _ := r.Context().Value(authKey{}).(bool)
	return ok
}

func withAuth(r *http.Request, ok bool) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), authKey{}, ok))
}
