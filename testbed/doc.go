// Package testbed holds tollgate's end-to-end tests: the real tollgate binary
// between SIPp user agents on loopback, plus the load benchmark script
// (bench.sh) and the SIPp scenarios both use. It has no library code; see
// README.md for running the scenarios by hand.
package testbed
