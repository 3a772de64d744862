#!/usr/bin/env bash
# Demo: a server and a client connector (plain TCP on 127.0.0.1), an application printing what the
# server receives, and an application sending test messages through the client; then a ping from
# the client to the server and the server's view of its peers. Stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/aioconn}
DIR=$(mktemp -d /tmp/aiodemoXXXX)
PORT=${PORT:-10673}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM
wait_for() { # wait_for <what> <command...>: at most 10 s
  local what=$1; shift
  for _ in $(seq 200); do "$@" && return 0; sleep 0.05; done
  echo "demo: timed out waiting for $what" >&2; exit 1
}

# The default manager template, with the demo's directory and use_ssl false (TLS: see the issues).
common="\"server_sockaddr\": [\"127.0.0.1\", $PORT], \"use_ssl\": false, \"connector_files_dirpath\": \"$DIR\", \"default_logger_dirpath\": \"$DIR\", \"send_message_types\": [\"any\"], \"recv_message_types\": [\"any\"]"
echo "{\"is_server\": true, $common}" > "$DIR/server.json"
echo "{\"is_server\": false, \"client_name\": \"client1\", $common}" > "$DIR/client.json"

echo "== starting the server and the client connector ($DIR)"
"$BIN" create_connector "$DIR/server.json" >/dev/null 2>&1 & pids+=($!)
wait_for "the server" test -S "$DIR/uds_path_send_to_connector_server_127001_$PORT"
"$BIN" create_connector "$DIR/client.json" >/dev/null 2>&1 & pids+=($!)
wait_for "the client" test -S "$DIR/uds_path_send_to_connector_client_client1"

echo "== server application: test_receive_messages (prints what it gets)"
"$BIN" test_receive_messages "$DIR/server.json" --count 5 & recv=$!; pids+=($recv)
wait_for "the receiving application" test -S "$DIR/uds_path_receive_from_connector_server_any_127001_$PORT"

echo "== client application: test_send_messages --count 5"
"$BIN" test_send_messages "$DIR/client.json" --count 5 --interval 200ms
wait "$recv" || true

echo "== client pings the server (answered by the server connector itself)"
"$BIN" ping "$DIR/client.json" --count 2 --interval 100ms

echo "== the server's connected peers, from its commander socket"
"$BIN" cli show_connected_peers --config "$DIR/server.json"
echo "== done"
