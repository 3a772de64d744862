//go:build race

package uds

// raceEnabled: built with -race (Wrap then leaves connections to net's own system calls).
const raceEnabled = true
