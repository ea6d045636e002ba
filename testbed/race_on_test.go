//go:build race

package testbed

// raceEnabled: the tests run under -race, so the gateway binary is built
// with -race too and any data race it reports fails the test.
const raceEnabled = true
