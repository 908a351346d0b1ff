package cli

import (
	"context"
	"fmt"

	"github.com/gather-go/gather/exchange/replay"
)

// feedCmd runs "gather feed replay FILE...": captured exchange feeds
// through the venues' adapters into a snapshot collector (exchange/replay).
func feedCmd(ctx context.Context, e *env, args []string) int {
	if len(args) > 0 && args[0] == "replay" {
		return replay.Replay(ctx, args[1:], e.stdout, e.stderr)
	}
	fmt.Fprintln(e.stderr, `usage: gather feed replay [flags] FILE...

Replays captured exchange feeds (Binance spot and USD-M futures, Kraken v1, OKX)
through their adapters into one snapshot collector, and prints the best bid and
offer of every book at each cut. Run "gather feed replay --help" for its flags.`)
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		return ExitOK
	}
	return ExitUsage
}
