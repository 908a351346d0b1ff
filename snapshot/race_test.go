//go:build race

package snapshot_test

// raceEnabled scales the randomized tests down under the race detector, which
// slows them tenfold; the full count runs without it.
const raceEnabled = true
