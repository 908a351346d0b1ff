package exchange_test

import (
	"encoding/json"
	"errors"
	"math/big"
	"testing"

	"github.com/gather-go/gather/exchange"
)

func TestParseDecimalKeepsTheWrittenText(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]exchange.Decimal{
		"0":                     {},
		"0.05000":               {Units: 5000, Scale: 5},
		"3366":                  {Units: 3366},
		"45285.2":               {Units: 452852, Scale: 1},
		"0.00000500":            {Units: 500, Scale: 8},
		"18446744073709551615":  {Units: 18446744073709551615},
		"0.0000000000000000001": {Units: 1, Scale: 19},
	} {
		d, err := exchange.ParseDecimal(s)
		if err != nil {
			t.Errorf("ParseDecimal(%q): %v", s, err)
			continue
		}
		if d != want {
			t.Errorf("ParseDecimal(%q) = %+v, want %+v", s, d, want)
		}
		if d.String() != s {
			t.Errorf("ParseDecimal(%q).String() = %q", s, d.String())
		}
	}
}

func TestParseDecimalRefuses(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", ".5", "5.", "007", "00.5", "-1", "+1", "1e5", "1.2.3", " 1", "1,5",
		"18446744073709551616", "0.00000000000000000001", "NaN", "0x10"} {
		if d, err := exchange.ParseDecimal(s); !errors.Is(err, exchange.ErrDecimal) {
			t.Errorf("ParseDecimal(%q) = %v, %v; want ErrDecimal", s, d, err)
		}
	}
}

func TestCmpAndNorm(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"3366", "3366.0", 0}, {"0.05", "0.050", 0}, {"0", "0.000", 0},
		{"3366.1", "3366", 1}, {"0.0024", "0.0026", -1}, {"1", "0.99999999", 1},
		{"18446744073709551615", "0.1", 1}, {"0.0000000000000000001", "18446744073709551615", -1},
	} {
		a, b := exchange.MustDecimal(c.a), exchange.MustDecimal(c.b)
		if got := a.Cmp(b); got != c.want {
			t.Errorf("%s.Cmp(%s) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := b.Cmp(a); got != -c.want {
			t.Errorf("%s.Cmp(%s) = %d, want %d", c.b, c.a, got, -c.want)
		}
		if (a.Norm() == b.Norm()) != (c.want == 0) {
			t.Errorf("Norm(%s) = %+v, Norm(%s) = %+v", c.a, a.Norm(), c.b, b.Norm())
		}
	}
}

func TestDecimalJSON(t *testing.T) {
	t.Parallel()
	var v struct{ P exchange.Decimal }
	if err := json.Unmarshal([]byte(`{"P":"0.0500"}`), &v); err != nil || v.P.String() != "0.0500" {
		t.Fatalf("unmarshal: %v %v", v.P, err)
	}
	out, err := json.Marshal(v)
	if err != nil || string(out) != `{"P":"0.0500"}` {
		t.Fatalf("marshal: %s %v", out, err)
	}
	for _, bad := range []string{`{"P":0.05}`, `{"P":"x"}`, `{"P":null}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil && bad != `{"P":null}` {
			t.Errorf("Unmarshal(%s) succeeded", bad)
		}
	}
}

func TestLevelsAndCompare(t *testing.T) {
	t.Parallel()
	var ls exchange.Levels
	if err := json.Unmarshal([]byte(` [ ["0.0024" , "10","x"], ["0.0026","0"] ] `), &ls); err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].Price.String() != "0.0024" || !ls[1].Qty.IsZero() {
		t.Fatalf("levels %v", ls)
	}
	if err := json.Unmarshal([]byte(`null`), &ls); err != nil || len(ls) != 0 {
		t.Fatalf("null: %v %v", ls, err)
	}
	bid1, bid2 := exchange.KeyOf(exchange.Bid, exchange.MustDecimal("10.0")), exchange.KeyOf(exchange.Bid, exchange.MustDecimal("9"))
	ask1, ask2 := exchange.KeyOf(exchange.Ask, exchange.MustDecimal("11")), exchange.KeyOf(exchange.Ask, exchange.MustDecimal("12.50"))
	order := []exchange.Key{bid1, bid2, ask1, ask2}
	for i := range order {
		for j := range order {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := exchange.Compare(order[i], order[j]); got != want {
				t.Errorf("Compare(%v, %v) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	if bid1 != exchange.KeyOf(exchange.Bid, exchange.MustDecimal("10")) {
		t.Error("KeyOf does not normalize the price")
	}
}

func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"0", "0.05000", "3366", "45285.2", "18446744073709551615", "1e5", ".5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := exchange.ParseDecimal(s)
		if err != nil {
			if !errors.Is(err, exchange.ErrDecimal) {
				t.Fatalf("error %v does not wrap ErrDecimal", err)
			}
			return
		}
		if d.String() != s {
			t.Fatalf("ParseDecimal(%q).String() = %q", s, d.String())
		}
		// Cmp against the exact rational value.
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("accepted %q, which is not a number", s)
		}
		one := exchange.Decimal{Units: 1}
		if got, want := d.Cmp(one), r.Cmp(big.NewRat(1, 1)); got != want {
			t.Fatalf("%q.Cmp(1) = %d, want %d", s, got, want)
		}
		if d.Norm().Cmp(d) != 0 {
			t.Fatalf("Norm changed the value of %q", s)
		}
	})
}

func FuzzLevels(f *testing.F) {
	for _, s := range []string{`[["0.0024","10"]]`, `[]`, `null`, `[["1","2","3","r"]]`, `[["1"]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ls exchange.Levels
		err := ls.UnmarshalJSON(data)
		if err != nil {
			if !errors.Is(err, exchange.ErrFormat) && !errors.Is(err, exchange.ErrDecimal) {
				t.Fatalf("error %v wraps neither ErrFormat nor ErrDecimal", err)
			}
			return
		}
		// Whatever ScanArrays accepts, encoding/json must accept as well.
		var raw [][]string
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatalf("accepted %q that is not a JSON array of string arrays: %v", data, err)
		}
		if len(raw) != len(ls) {
			t.Fatalf("decoded %d levels, encoding/json sees %d", len(ls), len(raw))
		}
	})
}
