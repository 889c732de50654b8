//go:build race

package model

// raceEnabled reports a -race build: the reference backend's loops run several
// times slower under it.
const raceEnabled = true
