package httpapi

import (
	"encoding/json"
	"errors"
	"reflect"
)

// items are a batch request's items: one copy of the JSON array, cut into
// its elements, so that decoding a batch of n items allocates twice, not n
// times (as []json.RawMessage would).
type items []json.RawMessage

// UnmarshalJSON implements json.Unmarshaler. The decoder has checked that
// b is one valid JSON value.
func (it *items) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '[' {
		return &json.UnmarshalTypeError{Value: jsonKind(b), Type: itemsType}
	}
	buf := append([]byte(nil), b...)
	out := make([]json.RawMessage, 0, 16)
	depth, inStr, esc, start := 0, false, false, -1
	for i, c := range buf {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			inStr = true
		case '[', '{':
			depth++
			if depth == 1 {
				continue
			}
		case ']', '}':
			depth--
			if depth == 0 {
				if start >= 0 {
					out = append(out, trimSpace(buf[start:i]))
				}
				*it = out
				return nil
			}
		case ',':
			if depth == 1 {
				if start < 0 {
					return errors.New("empty item")
				}
				out = append(out, trimSpace(buf[start:i]))
				start = -1
				continue
			}
		}
		if start < 0 && depth >= 1 {
			start = i
		}
	}
	return errors.New("items: unterminated array")
}

var itemsType = jsonTypeOf[[]json.RawMessage]()

func trimSpace(b []byte) json.RawMessage {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return json.RawMessage(b[:len(b):len(b)])
}

func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

func jsonTypeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }
