package queue_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/gather-go/gather/queue"
)

// FuzzJSONFastPath checks that the default codec's reflection-free paths
// agree with encoding/json, both ways.
func FuzzJSONFastPath(f *testing.F) {
	for _, s := range []string{"0", "-1", "42", "9223372036854775807", "-9223372036854775808", "1e3", " 1", "01", "true",
		"false", `"plain"`, `"a\"b"`, `"<&>"`, `"é"`, "{}", "null", `""`, "-", "18446744073709551616"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check[int](t, data)
		check[int32](t, data)
		check[int64](t, data)
		check[bool](t, data)
		check[string](t, data)
		check[struct{}](t, data)
	})
}

func check[T comparable](t *testing.T, data []byte) {
	var got, want T
	errGot := queue.JSON[T]{}.Decode(data, &got)
	errWant := json.Unmarshal(data, &want)
	if (errGot == nil) != (errWant == nil) || got != want {
		t.Fatalf("%T: Decode(%q) = %v, %v; encoding/json gives %v, %v", want, data, got, errGot, want, errWant)
	}
	if errWant != nil {
		return
	}
	enc, err := queue.JSON[T]{}.Append(nil, want)
	std, _ := json.Marshal(want)
	if err != nil || !bytes.Equal(enc, std) {
		t.Fatalf("%T: Append(%v) = %q, %v; encoding/json gives %q", want, want, enc, err, std)
	}
}
