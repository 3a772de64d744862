// Package uds names, creates, secures and removes the unix-domain sockets an aioconnectors
// 1.0.33 connector shares with its local applications (LOCAL-API.md §1, §2).
//
// Naming is a pure function of the connector directory, the role (server or client) and the
// source_id, so the connector, the Go API and the unchanged Python API all agree on every path.
// The package does not import config: callers pass plain values.
//
// Concurrency: every function is safe for concurrent use; none keeps state between calls.
// Functions that touch the file system (Listen, PrepareListen, ChownNobody, Exists, Remove)
// make blocking system calls and must not run on an event loop's hot path unless their cost
// (documented on each) is acceptable there.
package uds
