package queue

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Codec encodes and decodes one type for the wire. Implementations must be
// safe for concurrent use and must not keep data after Decode returns.
type Codec[T any] interface {
	// Append appends the encoding of v to dst.
	Append(dst []byte, v T) ([]byte, error)
	// Decode decodes data into v.
	Decode(data []byte, v *T) error
}

// JSON is the default Codec: encoding/json. Integers, booleans, plain ASCII
// strings and struct{} take a reflection-free path that produces the same
// bytes (about 20 ns instead of 200); everything else goes through
// encoding/json. The zero value is ready to use.
type JSON[T any] struct{}

// Append implements Codec.
func (JSON[T]) Append(dst []byte, v T) ([]byte, error) {
	switch x := any(v).(type) {
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case struct{}:
		return append(dst, "{}"...), nil
	case string:
		if plainASCII(x) {
			dst = append(dst, '"')
			dst = append(dst, x...)
			return append(dst, '"'), nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// Decode implements Codec.
func (j JSON[T]) Decode(data []byte, v *T) error {
	if x, ok := j.decodeValue(data); ok {
		*v = x
		return nil
	}
	return json.Unmarshal(data, v)
}

// decodeValue decodes the reflection-free types into a value the caller can
// keep on its stack; ok is false for anything else (use Decode).
func (JSON[T]) decodeValue(data []byte) (v T, ok bool) {
	switch p := any(&v).(type) {
	case *int:
		if n, ok := parseInt(data, math.MinInt, math.MaxInt); ok {
			*p = int(n)
			return v, true
		}
	case *int64:
		if n, ok := parseInt(data, math.MinInt64, math.MaxInt64); ok {
			*p = n
			return v, true
		}
	case *int32:
		if n, ok := parseInt(data, math.MinInt32, math.MaxInt32); ok {
			*p = int32(n)
			return v, true
		}
	case *bool:
		switch string(data) {
		case "true":
			*p = true
			return v, true
		case "false":
			*p = false
			return v, true
		}
	case *struct{}:
		if string(data) == "{}" {
			return v, true
		}
	case *string:
		if len(data) >= 2 && data[0] == '"' && data[len(data)-1] == '"' && plainASCII(string(data[1:len(data)-1])) {
			*p = string(data[1 : len(data)-1])
			return v, true
		}
	}
	return v, false
}

// decode decodes data with c. The JSON codec's reflection-free types decode
// into a value on the stack: passing &v through the Codec interface moves v
// to the heap, one allocation a task.
func decode[T any](c Codec[T], data []byte) (T, error) {
	if j, ok := c.(JSON[T]); ok {
		if v, ok := j.decodeValue(data); ok {
			return v, nil
		}
	}
	p := new(T)
	err := c.Decode(data, p)
	return *p, err
}

// plainASCII reports whether s encodes in JSON as itself between quotes.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// parseInt parses a JSON integer without exponent or fraction, within
// [lo, hi]; anything else reports false (and goes to encoding/json).
func parseInt(b []byte, lo, hi int64) (int64, bool) {
	if len(b) == 0 || len(b) > 19 { // 18 digits and a sign cannot overflow
		return 0, false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if len(b) > 18 || len(b) > 1 && b[0] == '0' {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, n >= lo && n <= hi
}

// Kind is a named, typed task: tasks of a kind take an In and produce an Out.
// Producers enqueue with it and workers register a handler for it; the two
// sides must use the same name and codecs. A Kind is an immutable value, safe
// for concurrent use; the zero value is not usable (use NewKind).
type Kind[In, Out any] struct {
	name string
	in   Codec[In]
	out  Codec[Out]
}

// NewKind returns the kind called name, with JSON codecs. It panics if name is
// empty, a programmer error.
func NewKind[In, Out any](name string) Kind[In, Out] {
	if name == "" {
		panic("queue: NewKind with an empty name")
	}
	return Kind[In, Out]{name: name, in: JSON[In]{}, out: JSON[Out]{}}
}

// WithCodecs returns a copy of k that encodes inputs with in and outputs with
// out. A nil codec keeps the current one.
func (k Kind[In, Out]) WithCodecs(in Codec[In], out Codec[Out]) Kind[In, Out] {
	if in != nil {
		k.in = in
	}
	if out != nil {
		k.out = out
	}
	return k
}

// Name returns the kind's name.
func (k Kind[In, Out]) Name() string { return k.name }

// Input decodes the input of a task of this kind, such as a DeadLetter's.
func (k Kind[In, Out]) Input(m *Message) (In, error) {
	var in In
	if m.Kind != k.name {
		return in, fmt.Errorf("%w: message of kind %q, not %q", ErrBadInput, m.Kind, k.name)
	}
	if err := k.in.Decode(m.Payload, &in); err != nil {
		return in, fmt.Errorf("%w: decoding %s input: %v", ErrBadInput, k.name, err)
	}
	return in, nil
}

func (k Kind[In, Out]) check() {
	if k.name == "" {
		panic("queue: zero Kind: use NewKind")
	}
}
