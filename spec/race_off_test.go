//go:build !race

package spec

const raceOn = false
