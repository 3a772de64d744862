// Package api is the Go application API of aioconn: the equivalent of aioconnectors 1.0.33's
// ConnectorAPI (send messages to a connector, receive the messages it delivers) and
// ConnectorRemoteTool (management commands), speaking the exact bytes the Python API speaks
// on the connector's unix sockets (LOCAL-API.md §2–§5, §7). It works with the Python
// connector and with aioconn's own connector alike.
//
// Sockets (paths from config.APIOptions, LOCAL-API.md §1.4):
//   - send-to-connector: the connector listens, API.SendMessage connects. In preserve mode
//     (uds_path_send_preserve_socket, the default) one cached connection carries every plain
//     message; otherwise every message gets its own connection. An await-response request
//     always has its own connection, on which the connector writes back the single reply.
//   - receive-from-connector (one per message type): API.StartWaitingForMessages listens,
//     the connector connects and writes frames; the API never writes on it.
//   - commander: the connector listens; RemoteTool writes one command and reads one reply
//     per connection.
//
// Concurrency: every method of API and RemoteTool is safe for concurrent use. The package
// uses the standard net package and goroutines (one accept goroutine per message type
// waited on, one reader goroutine per connection the connector opens).
//
// Return values differ from Python in form, not in meaning: where Python returns True the
// Go methods return a nil error (bytes written to the connector's socket, no delivery
// guarantee), where Python returns False or None they return an error wrapping one of the
// sentinels of errors.go.
package api
