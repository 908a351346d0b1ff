package httpapi

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
