package natsbroker

import "testing"

// FuzzUntok: untok inverts tok for every string, and reads any string
// without panicking.
func FuzzUntok(f *testing.F) {
	for _, s := range []string{"", "default", "a.b c", "=", "=3D", "ü*>", "=4", "=zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, ok := untok(tok(s)); !ok || got != s {
			t.Fatalf("untok(tok(%q)) = %q, %v", s, got, ok)
		}
		untok(s)
	})
}
