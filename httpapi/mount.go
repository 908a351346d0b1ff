package httpapi

import (
	"fmt"
	"net/http"
)

// Route is one route of a [Service] mounted on a Server: Method and
// Pattern as http.ServeMux takes them ("GET", "/v1/things/{id}"), and the
// handler. An error the handler returns is written as problem+json: one
// made by [Error] with its status and code, any other as a 500.
type Route struct {
	Method, Pattern string
	Handler         func(w http.ResponseWriter, r *http.Request) error
}

// Service is a set of routes served by a Server beside its own, behind the
// same host, token and cross-origin checks and with the same problem
// responses. Drain is called by [Server.Drain]: the service ends its waits
// and event streams and refuses new work (with a 503 made by Error and
// CodeDraining). It must not block, and may be called more than once.
type Service interface {
	Routes() []Route
	Drain()
}

// Mount serves svc's routes on s. Call it before s serves requests. It
// returns an error, and mounts nothing, if a route's method or pattern is
// empty or a pattern is already served.
func (s *Server) Mount(svc Service) error {
	rts := svc.Routes()
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, rt := range s.routes() {
		seen[rt.method+" "+rt.pattern] = true
	}
	for _, m := range s.mounted {
		seen[m.method+" "+m.pattern] = true
	}
	for _, rt := range rts {
		k := rt.Method + " " + rt.Pattern
		if rt.Method == "" || rt.Pattern == "" || rt.Handler == nil || seen[k] {
			return fmt.Errorf("httpapi: Mount: route %q is empty or already served", k)
		}
		seen[k] = true
	}
	for _, rt := range rts {
		h := rt.Handler
		s.mux.HandleFunc(rt.Method+" "+rt.Pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r); err != nil {
				s.fail(w, r, err)
			}
		})
		s.mounted = append(s.mounted, route{rt.Method, rt.Pattern, h})
	}
	s.services = append(s.services, svc)
	if s.draining.Load() {
		svc.Drain()
	}
	return nil
}

// Error returns an error that a handler of a mounted [Route] returns to
// answer with problem+json: status, the stable code (one of the Code
// constants) and a detail saying what was wrong and what is accepted.
func Error(status int, code, format string, args ...any) error {
	return problem(status, code, format, args...)
}
