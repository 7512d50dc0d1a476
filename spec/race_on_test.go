//go:build race

package spec

// raceOn: the race detector slows parsing about tenfold; time bounds scale.
const raceOn = true
