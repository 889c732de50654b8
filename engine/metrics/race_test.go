//go:build race

package metrics

// raceEnabled trims the slowest data-dependent checks under -race (≈ 10× slower).
const raceEnabled = true
