package queuetest

import (
	"os"
	"strconv"
	"time"
)

// SlowEnv names the environment variable that scales every liveness bound
// of the queue's tests (see Liveness): a positive number such as 2 or 0.5.
const SlowEnv = "GATHER_TEST_SLOW"

// Liveness returns d, a bound on how long a test waits for something that
// must happen (an outcome, a shutdown) before it fails rather than hangs,
// multiplied by the factor in SlowEnv (1 when unset or not a positive
// number). A liveness bound is not a speed goal: it only turns a hang into
// a failure, so it is generous, and a machine slower than any the bounds
// were chosen on (an emulator, a build farm under load) raises the factor
// rather than editing tests (and raises go test's -timeout with it). It
// never shortens a window a test measures (leases, delays, deadlines:
// those scale with TimeUnit).
func Liveness(d time.Duration) time.Duration {
	return time.Duration(float64(d) * slowFactor())
}

func slowFactor() float64 {
	f, err := strconv.ParseFloat(os.Getenv(SlowEnv), 64)
	if err != nil || !(f > 0) || f > 1000 {
		return 1
	}
	return f
}
