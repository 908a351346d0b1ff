package exchange

import (
	"errors"
	"fmt"
)

// ErrFormat: a message was not in the format the venue documents. Decoders'
// errors wrap it (or [ErrDecimal] for a bad number) and say what was expected.
var ErrFormat = errors.New("exchange: message not in the documented format")

// ScanArrays walks a JSON array of arrays of strings, such as
// [["0.0024","10"],["0.0025","3"]], calling fn with the raw contents of each
// inner array's strings (without quotes). Inner arrays must have between
// minFields and maxFields strings (maxFields at most 8); strings must hold no
// escapes. fn's slices are valid only during the call. "null" is taken for
// an empty array. It does not allocate unless it fails.
func ScanArrays(data []byte, minFields, maxFields int, fn func(fields [][]byte) error) error {
	var buf [8][]byte
	if maxFields > len(buf) {
		maxFields = len(buf)
	}
	i := skipSpace(data, 0)
	if hasPrefixAt(data, i, "null") {
		if j := skipSpace(data, i+4); j != len(data) {
			return fmt.Errorf("%w: trailing data after null", ErrFormat)
		}
		return nil
	}
	if i >= len(data) || data[i] != '[' {
		return fmt.Errorf("%w: want an array of levels such as [[\"1.5\",\"2\"]]", ErrFormat)
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return trailing(data, i+1)
	}
	for n := 0; ; n++ {
		if i >= len(data) || data[i] != '[' {
			return fmt.Errorf("%w: level %d: want an array of strings such as [\"1.5\",\"2\"]", ErrFormat, n)
		}
		i = skipSpace(data, i+1)
		k := 0
		if i < len(data) && data[i] == ']' {
			i++
		} else {
			for {
				if i >= len(data) || data[i] != '"' {
					return fmt.Errorf("%w: level %d field %d: want a string", ErrFormat, n, k)
				}
				j := i + 1
				for j < len(data) && data[j] != '"' {
					if data[j] == '\\' || data[j] < 0x20 {
						return fmt.Errorf("%w: level %d field %d: escapes and control characters are not accepted in a number", ErrFormat, n, k)
					}
					j++
				}
				if j >= len(data) {
					return fmt.Errorf("%w: level %d field %d: unterminated string", ErrFormat, n, k)
				}
				if k >= maxFields {
					return fmt.Errorf("%w: level %d has more than %d fields", ErrFormat, n, maxFields)
				}
				buf[k] = data[i+1 : j]
				k++
				i = skipSpace(data, j+1)
				if i < len(data) && data[i] == ',' {
					i = skipSpace(data, i+1)
					continue
				}
				if i < len(data) && data[i] == ']' {
					i++
					break
				}
				return fmt.Errorf("%w: level %d: want ',' or ']' after field %d", ErrFormat, n, k-1)
			}
		}
		if k < minFields {
			return fmt.Errorf("%w: level %d has %d fields, want at least %d", ErrFormat, n, k, minFields)
		}
		if err := fn(buf[:k]); err != nil {
			return fmt.Errorf("level %d: %w", n, err)
		}
		i = skipSpace(data, i)
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
			continue
		}
		if i < len(data) && data[i] == ']' {
			return trailing(data, i+1)
		}
		return fmt.Errorf("%w: want ',' or ']' after level %d", ErrFormat, n)
	}
}

func trailing(data []byte, i int) error {
	if skipSpace(data, i) != len(data) {
		return fmt.Errorf("%w: trailing data after the array of levels", ErrFormat)
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func hasPrefixAt(b []byte, i int, p string) bool {
	return len(b)-i >= len(p) && string(b[i:i+len(p)]) == p
}

// Levels is a list of price levels that decodes from the JSON form most
// venues use, [["price","qty"],…], ignoring fields after the first two.
type Levels []Level

// UnmarshalJSON decodes [["price","qty",…],…]; null is an empty list.
func (ls *Levels) UnmarshalJSON(data []byte) error {
	out := (*ls)[:0]
	err := ScanArrays(data, 2, 8, func(f [][]byte) error {
		p, err := ParseDecimal(f[0])
		if err != nil {
			return fmt.Errorf("price: %w", err)
		}
		q, err := ParseDecimal(f[1])
		if err != nil {
			return fmt.Errorf("quantity: %w", err)
		}
		out = append(out, Level{Price: p, Qty: q})
		return nil
	})
	if err != nil {
		return err
	}
	*ls = out
	return nil
}
