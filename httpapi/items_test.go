package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzItems checks the items splitter against encoding/json's own
// []json.RawMessage on every valid JSON value: the same elements, or an
// error for both.
func FuzzItems(f *testing.F) {
	for _, s := range []string{`[]`, `[1]`, `[1, "a,b", {"c":[1,2]}, null ]`, `["\"]", "\\"]`, `[[],[[]],{}]`, `"x"`, `{"a":1}`, ` [ 1 , 2 ] `, `[1,]`, `[,1]`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		b = bytes.TrimSpace(b) // the decoder hands UnmarshalJSON the value without surrounding space
		if string(b) == "null" {
			return // json leaves the slice nil; the API refuses null items, tested in the hostile table
		}
		var want []json.RawMessage
		werr := json.Unmarshal(b, &want)
		var got items
		gerr := got.UnmarshalJSON(b)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%q: splitter error %v, json error %v", b, gerr, werr)
		}
		if werr != nil {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d items, want %d", b, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%q: item %d = %q, want %q", b, i, got[i], want[i])
			}
		}
	})
}
