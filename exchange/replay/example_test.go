package replay_test

import (
	"context"
	"io"
	"os"

	"github.com/gather-go/gather/exchange/replay"
)

// A Binance spot capture whose book loses events 13 and 14: the cuts show
// it stale (Binance sends no heartbeats) and then gapped.
func ExampleReplay() {
	code := replay.Replay(context.Background(), []string{"--every", "500ms", "--grace", "0s", "testdata/gap.capture"}, os.Stdout, io.Discard)
	if code != 0 {
		panic(code)
	}
	// Output:
	// cut 2023-11-14T22:13:20.5Z incomplete
	//   binance:BNBBTC           bid 1.0 x 2                      ask 2.0 x 1                     stale
	// cut 2023-11-14T22:13:21Z incomplete
	//   binance:BNBBTC           bid 1.0 x 2                      ask 2.0 x 1                     stale
	// cut 2023-11-14T22:13:21.5Z incomplete
	//   binance:BNBBTC           bid 1.0 x 2                      ask 2.0 x 1                     gapped (missing 13..14)
}
