// Package e2e tests the gather program's web dashboard in a real browser:
// Debian's chromium, headless, driven by chromedp, against the real server
// (gather serve on its embedded NATS, in this process). It is a module of
// its own so that the browser driver never becomes a dependency of the
// library. Run it with e2e/run.sh, which installs chromium first.
package e2e

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
