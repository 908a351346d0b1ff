package main

import (
	"context"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// One simulated second of four venues quoting 300 symbols, cut every 100ms.
// XNAS and ARCX stay current (ARCX loses a few messages and gets them resent
// when the collector asks); BATS stops at 550ms, so every snapshot from 600ms
// on is incomplete, first with BATS stale and then silent; EDGX is optional
// and always a little behind (at 700ms gapped, a quote it held back not yet
// in), which never blocks a snapshot.
func Example() {
	if err := run(context.Background(), os.Stdout, defaults()); err != nil {
		panic(err)
	}
	// Output:
	// 09:30:00.100 complete    quoted 286  locked 0  crossed 0  behind: EDGX stale 14ms (optional)
	// 09:30:00.200 complete    quoted 299  locked 2  crossed 0  behind: EDGX stale 14ms (optional)
	// 09:30:00.300 complete    quoted 300  locked 2  crossed 0  behind: EDGX stale 14ms (optional)
	// 09:30:00.400 complete    quoted 300  locked 0  crossed 0  behind: EDGX stale 13ms (optional)
	// 09:30:00.500 complete    quoted 300  locked 2  crossed 0  behind: EDGX stale 13ms (optional)
	// 09:30:00.600 INCOMPLETE  quoted 300  locked 6  crossed 0  behind: BATS stale 51ms, EDGX stale 12ms (optional)
	// 09:30:00.700 INCOMPLETE  quoted 300  locked 5  crossed 1  behind: BATS silent since 09:30:00.549, EDGX gapped (2 missing) (optional)
	// 09:30:00.800 INCOMPLETE  quoted 300  locked 1  crossed 0  behind: BATS silent since 09:30:00.549, EDGX stale 14ms (optional)
	// 09:30:00.900 INCOMPLETE  quoted 300  locked 3  crossed 0  behind: BATS silent since 09:30:00.549, EDGX stale 12ms (optional)
	// 09:30:01.000 INCOMPLETE  quoted 300  locked 6  crossed 0  behind: BATS silent since 09:30:00.549, EDGX stale 15ms (optional)
	// 5 of 10 snapshots complete; 10704 updates applied, 9 resent after gaps, 601 late
	// NBBO at 09:30:01.000:
	//   AAPL  271.47 (XNAS) x 271.49 (XNAS)
	//   MSFT  12.41 (XNAS) x 12.43 (XNAS)
	//   AMZN  299.82 (XNAS) x 299.84 (XNAS)
	//   NVDA  55.64 (XNAS) x 55.66 (XNAS)
}
