package replay_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/gather-go/gather/exchange/replay"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = replay.Replay(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// mixed.capture interleaves the three venues; its checks are the checksums
// Kraken and OKX publish with their documentation and a Binance book ticker.
// mixed.want was checked by hand: the cuts at :21 and :22 hold the Binance
// book from its image and the diffs after 107, the documented Kraken book and
// OKX's example book; the one at :23 also the bid 0.0025 sent at :22.25.
func TestReplayPrintsEveryCut(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile("testdata/mixed.want")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, "--check", "testdata/mixed.capture")
	if code != 0 {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, errs)
	}
	if out != string(want) {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	if !strings.Contains(errs, "replayed 19 lines from 1 files: 2 skipped") {
		t.Errorf("stderr does not count the 19 capture lines and the 2 others:\n%s", errs)
	}
}

func TestReplayMergesFilesByReceiveTime(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile("testdata/mixed.want")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, "--check", "testdata/okx.capture", "testdata/kraken.capture", "testdata/binance.capture")
	if code != 0 || out != string(want) {
		t.Fatalf("exit code %d, stdout:\n%s\nwant the single file's:\n%s\nstderr:\n%s", code, out, want, errs)
	}
}

func TestReplayCheckFailsOnAMismatch(t *testing.T) {
	t.Parallel()
	code, out, errs := run(t, "--check", "testdata/mismatch.capture")
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := lines[len(lines)-1]; last != "checks: 1 matched, 1 mismatched" {
		t.Errorf("last line %q, want %q", last, "checks: 1 matched, 1 mismatched")
	}
	if !strings.Contains(errs, "mismatch.capture:4: kraken: XBT/USD update") || !strings.Contains(errs, "checksum 974947235 sent") {
		t.Errorf("stderr does not say which line failed and why:\n%s", errs)
	}
	if !strings.Contains(out, "invalid") || !strings.Contains(out, "incomplete") {
		t.Errorf("the cut after the mismatch does not show the book invalid:\n%s", out)
	}
	// Without --check the checksum still invalidates the book, but the
	// replay itself succeeds.
	if code, _, _ := run(t, "testdata/mismatch.capture"); code != 0 {
		t.Errorf("without --check: exit code %d, want 0", code)
	}
}

func TestReplayShowsAGap(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, "--every", "500ms", "--grace", "0s", "testdata/gap.capture")
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	// Binance sends no heartbeats: until an event later than a cut arrives
	// the book is stale there, with what it had.
	first, _, _ := strings.Cut(out, "\ncut ")
	if !strings.HasPrefix(first, "cut 2023-11-14T22:13:20.5Z incomplete\n") || !strings.Contains(first, "bid 1.0 x 2 ") || !strings.HasSuffix(first, "stale") {
		t.Errorf("first cut:\n%s\nwant it incomplete, the bid 1.0 x 2, the book stale", first)
	}
	if !strings.Contains(out, "cut 2023-11-14T22:13:21.5Z incomplete\n") || !strings.Contains(out, "gapped (missing 13..14)") {
		t.Errorf("the cut after the lost events does not show the gap:\n%s", out)
	}
}

func TestReplayUsage(t *testing.T) {
	t.Parallel()
	code, _, errs := run(t, "--help")
	if code != 0 || !strings.Contains(errs, "usage: gather feed replay") || !strings.Contains(errs, "Example:") || !strings.Contains(errs, "-check") {
		t.Errorf("--help: exit code %d, output:\n%s", code, errs)
	}
	for _, args := range [][]string{
		nil,
		{"--every", "0s", "testdata/gap.capture"},
		{"--grace", "-1s", "testdata/gap.capture"},
		{"--bogus", "testdata/gap.capture"},
		{"testdata/no-such-file.capture"},
	} {
		if code, _, errs := run(t, args...); code != 2 || errs == "" {
			t.Errorf("Replay(%q): exit code %d, stderr %q; want 2 and a message", args, code, errs)
		}
	}
}

func TestReplayStopsWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	if code := replay.Replay(ctx, []string{"testdata/mixed.capture"}, &out, &errb); code != 1 {
		t.Errorf("exit code %d with an ended context, want 1", code)
	}
}

func TestReplayJSON(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, "--json", "--every", "500ms", "--grace", "0s", "testdata/gap.capture")
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := `{"time":"2023-11-14T22:13:21.5Z","complete":false,"books":[{"source":"binance:BNBBTC","state":"gapped","bid":{"price":"1.0","qty":"2"},"ask":{"price":"2.0","qty":"1"},"missing":{"first":13,"last":14}}]}`
	if len(lines) != 3 || lines[2] != want {
		t.Errorf("JSON lines:\n%s\nwant the last:\n%s", out, want)
	}
}

func TestReplaySkipsTheCutsOfALongSilence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := dir + "/silence.capture"
	capture := `https://api.binance.com/api/v3/depth?symbol=BNBBTC -> 1700000000.1: {"lastUpdateId":10,"bids":[["1.0","1"]],"asks":[["2.0","1"]]}
1700000000.2: {"e":"depthUpdate","E":1700000000150,"s":"BNBBTC","U":11,"u":11,"b":[],"a":[]}
1700086400.2: {"e":"depthUpdate","E":1700086400150,"s":"BNBBTC","U":12,"u":12,"b":[],"a":[]}
`
	if err := os.WriteFile(name, []byte(capture), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, name)
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, errs)
	}
	if n := strings.Count(out, "\ncut ") + 1; n > 1010 {
		t.Errorf("a day of silence printed %d cuts; want it skipped", n)
	}
	if !strings.Contains(errs, "cuts skipped: no line received from") {
		t.Errorf("stderr does not say cuts were skipped:\n%s", errs)
	}
}

// Tickers are checked whether they arrive before the event they refer to
// (by the Checker, when the event is applied) or after it (against the
// book right after it); one inside an event's range of IDs cannot be.
func TestReplayChecksTickersBeforeAndAfterTheirEvent(t *testing.T) {
	t.Parallel()
	code, out, errs := run(t, "--check", "testdata/tickers.capture")
	if code != 1 {
		t.Errorf("exit code %d, want 1 (a ticker disagrees)", code)
	}
	if !strings.HasSuffix(out, "checks: 3 matched, 1 mismatched\n") {
		t.Errorf("stdout:\n%s\nwant it to end with checks: 3 matched, 1 mismatched", out)
	}
	if !strings.Contains(errs, "tickers.capture:8: binance:BNBBTC after 13: ticker says bid 9@1.0") {
		t.Errorf("stderr does not name the late ticker that disagrees:\n%s", errs)
	}
	if !strings.Contains(errs, "1 checks could not be made") {
		t.Errorf("stderr does not count the ticker inside a range:\n%s", errs)
	}
}
