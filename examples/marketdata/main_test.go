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
// when the collector asks; one resend is slow enough to leave the 800ms
// snapshot gapped); BATS stops at 550ms, so every snapshot from 600ms on is
// incomplete, first with BATS stale and then silent; EDGX is optional and
// always a little behind, which never blocks a snapshot.
func Example() {
	if err := run(context.Background(), os.Stdout, defaults()); err != nil {
		panic(err)
	}
	// Output:
	// 09:30:00.100 complete    quoted 282  locked 1  crossed 0  behind: EDGX stale 14ms (optional)
	// 09:30:00.200 complete    quoted 296  locked 8  crossed 0  behind: EDGX stale 15ms (optional)
	// 09:30:00.300 complete    quoted 300  locked 9  crossed 1  behind: EDGX stale 13ms (optional)
	// 09:30:00.400 complete    quoted 300  locked 11  crossed 1  behind: EDGX stale 11ms (optional)
	// 09:30:00.500 complete    quoted 300  locked 16  crossed 2  behind: EDGX stale 12ms (optional)
	// 09:30:00.600 INCOMPLETE  quoted 300  locked 1  crossed 1  behind: BATS stale 50ms, EDGX stale 12ms (optional)
	// 09:30:00.700 INCOMPLETE  quoted 300  locked 7  crossed 0  behind: BATS silent since 09:30:00.549, EDGX stale 15ms (optional)
	// 09:30:00.800 INCOMPLETE  quoted 300  locked 0  crossed 0  behind: ARCX gapped (1 missing), BATS silent since 09:30:00.549, EDGX stale 13ms (optional)
	// 09:30:00.900 INCOMPLETE  quoted 300  locked 10  crossed 0  behind: BATS silent since 09:30:00.549, EDGX stale 14ms (optional)
	// 09:30:01.000 INCOMPLETE  quoted 300  locked 6  crossed 0  behind: BATS silent since 09:30:00.549, EDGX stale 15ms (optional)
	// 5 of 10 snapshots complete; 8283 updates applied, 6 resent after gaps, 127 late
	// NBBO at 09:30:01.000:
	//   AAPL  402.30 (XNAS) x 402.32 (XNAS)
	//   MSFT  80.21 (XNAS) x 80.23 (XNAS)
	//   AMZN  72.12 (ARCX) x 72.13 (XNAS)
	//   NVDA  226.97 (XNAS) x 226.99 (XNAS)
}
