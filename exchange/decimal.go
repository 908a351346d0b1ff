package exchange

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
)

// Decimal is a non-negative decimal number kept as the exchange wrote it: its
// digits without the point (Units) and how many of them follow the point
// (Scale). "0.05000" is Units 5000, Scale 5; "3366" is Units 3366, Scale 0.
// Keeping the written scale is what checksums need: Kraken's is computed from
// the digits as written, OKX's from the text as written, and both are
// reproduced exactly without keeping the text.
//
// Two Decimals of equal value but different scale ("0.05", "0.050") are not ==;
// compare values with [Decimal.Cmp], and use [Decimal.Norm] where a canonical
// form is needed (a map key). The zero value is 0. Decimal is a small value
// type, safe to copy and share.
type Decimal struct {
	// Units is the number's digits without the point.
	Units uint64
	// Scale is the number of digits after the point, at most MaxScale.
	Scale uint8
}

// MaxScale is the most digits a Decimal keeps after the point.
const MaxScale = 19

// ErrDecimal: a price or quantity was not a plain non-negative decimal
// number. Errors from [ParseDecimal] wrap it.
var ErrDecimal = errors.New("exchange: bad decimal number")

// ParseDecimal parses a non-negative decimal number written as exchanges
// write prices and quantities: digits, optionally a point and more digits
// ("0.05000", "3366", "45285.2"). No sign, exponent, spaces, leading point or
// superfluous leading zero ("007") is accepted, so that the number's text is
// exactly [Decimal.String]; at most 19 significant digits and MaxScale digits
// after the point. It does not allocate unless it fails.
func ParseDecimal[T string | []byte](s T) (Decimal, error) {
	var d Decimal
	n := len(s)
	if n == 0 {
		return d, fmt.Errorf("%w: empty; want digits with an optional fraction, such as 123.45", ErrDecimal)
	}
	point := -1
	for i := 0; i < n; i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			hi, lo := bits.Mul64(d.Units, 10)
			lo, carry := bits.Add64(lo, uint64(c-'0'), 0)
			if hi != 0 || carry != 0 {
				return Decimal{}, fmt.Errorf("%w: %q has too many digits (at most 19 significant)", ErrDecimal, quote(s))
			}
			d.Units = lo
		case c == '.' && point < 0:
			point = i
		default:
			return Decimal{}, fmt.Errorf("%w: %q: unexpected %q at %d; want digits with an optional fraction, such as 123.45", ErrDecimal, quote(s), rune(c), i)
		}
	}
	if point == 0 || point == n-1 {
		return Decimal{}, fmt.Errorf("%w: %q: a point needs digits on both sides, such as 0.5", ErrDecimal, quote(s))
	}
	intDigits := n
	if point > 0 {
		intDigits = point
		if frac := n - point - 1; frac > MaxScale {
			return Decimal{}, fmt.Errorf("%w: %q has %d digits after the point (at most %d)", ErrDecimal, quote(s), frac, MaxScale)
		} else {
			d.Scale = uint8(frac)
		}
	}
	if intDigits > 1 && s[0] == '0' {
		return Decimal{}, fmt.Errorf("%w: %q has a leading zero; want digits with an optional fraction, such as 123.45", ErrDecimal, quote(s))
	}
	return d, nil
}

func quote[T string | []byte](s T) string {
	const max = 40
	if len(s) > max {
		return string(s[:max]) + "…"
	}
	return string(s)
}

// MustDecimal is ParseDecimal for constants in tests and examples; it panics
// if s is not a valid decimal.
func MustDecimal(s string) Decimal {
	d, err := ParseDecimal(s)
	if err != nil {
		panic(err)
	}
	return d
}

// IsZero reports whether d is zero, at any scale.
func (d Decimal) IsZero() bool { return d.Units == 0 }

// Norm returns d with trailing fraction zeros removed: the canonical form of
// its value, so Norm(a) == Norm(b) exactly when a.Cmp(b) == 0.
func (d Decimal) Norm() Decimal {
	for d.Scale > 0 && d.Units%10 == 0 {
		d.Units /= 10
		d.Scale--
	}
	if d.Units == 0 {
		d.Scale = 0
	}
	return d
}

var pow10 = [...]uint64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// Cmp compares the values of d and e: -1 if d < e, 0 if equal, +1 if d > e.
// It is exact for every pair of Decimals and does not allocate.
func (d Decimal) Cmp(e Decimal) int {
	if d.Scale == e.Scale {
		return cmpUint(d.Units, e.Units)
	}
	if d.Scale < e.Scale {
		return -e.Cmp(d)
	}
	// d has more fraction digits: scale e up to d's scale.
	hi, lo := bits.Mul64(e.Units, pow10[d.Scale-e.Scale])
	if hi != 0 {
		return -1 // e·10^k does not fit in 64 bits, so it exceeds d.Units
	}
	return cmpUint(d.Units, lo)
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// AppendText appends d as it was written ("0.05000") to b.
func (d Decimal) AppendText(b []byte) ([]byte, error) { return d.appendText(b), nil }

const pairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

// digits returns how many decimal digits u has (1 for 0).
func digits(u uint64) int {
	n := 1
	for u >= 10000 {
		u /= 10000
		n += 4
	}
	for u >= 10 {
		u /= 10
		n++
	}
	return n
}

func (d Decimal) appendText(b []byte) []byte {
	// Written backwards in place two digits at a time (checksums format
	// dozens of numbers per message): the fraction, the point, then the
	// integer part, which has at least one digit.
	scale := int(d.Scale)
	n := max(digits(d.Units), scale+1)
	if scale > 0 {
		n++
	}
	b = slices.Grow(b, n)
	b = b[:len(b)+n]
	i := len(b)
	u := d.Units
	if k := scale; k > 0 {
		for ; k >= 2; k -= 2 {
			q := u / 100
			r := (u - q*100) * 2
			i -= 2
			b[i], b[i+1] = pairs[r], pairs[r+1]
			u = q
		}
		if k == 1 {
			i--
			b[i] = byte('0' + u%10)
			u /= 10
		}
		i--
		b[i] = '.'
	}
	for u >= 100 {
		q := u / 100
		r := (u - q*100) * 2
		i -= 2
		b[i], b[i+1] = pairs[r], pairs[r+1]
		u = q
	}
	if u >= 10 {
		i -= 2
		b[i], b[i+1] = pairs[u*2], pairs[u*2+1]
	} else {
		i--
		b[i] = byte('0' + u)
	}
	return b
}

// String returns d as it was written, such as "0.05000".
func (d Decimal) String() string { return string(d.appendText(nil)) }

// Float64 returns the nearest float64 to d, for display and arithmetic that
// tolerates rounding.
func (d Decimal) Float64() float64 {
	f, _ := strconv.ParseFloat(d.String(), 64)
	return f
}

// UnmarshalJSON accepts a decimal as a JSON string ("0.05000"), the way
// exchanges send prices and quantities to keep their precision.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return fmt.Errorf("%w: %q is not a JSON string; want a quoted number such as \"123.45\"", ErrDecimal, quote(b))
	}
	v, err := ParseDecimal(b[1 : len(b)-1])
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON writes d as a JSON string as it was written.
func (d Decimal) MarshalJSON() ([]byte, error) {
	b := append(make([]byte, 0, 24), '"')
	b = d.appendText(b)
	return append(b, '"'), nil
}
