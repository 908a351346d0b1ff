//go:build !unix

package natsbroker_test

import "time"

// cpuTime is unknown here (see the unix version).
func cpuTime() (time.Duration, bool) { return 0, false }
