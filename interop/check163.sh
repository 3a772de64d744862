#!/usr/bin/env bash
# Quick check against a later aioconnectors (1.6.3), which interop/run.sh does not drive: an aioconn
# server and a Python client connector of that version, three messages each way between a Python
# app on each side (the server's app uses the 1.0.33 API of AIOCONNECTORS_PATH, the client's the
# API of AIOCONNECTORS_163_PATH). Prints what each app received. SERVER_SENDS=0: the server's app
# sends nothing (the client's three messages only).
#
# Usage: AIOCONN_BIN=... AIOCONNECTORS_PATH=/path/to/1.0.33 AIOCONNECTORS_163_PATH=/path/to/1.6.3 \
#          interop/check163.sh [plain|allow_all]
# Stops only the processes it started, by PID; everything lives in a mktemp dir (kept, printed).
set -u
MODE=${1:-allow_all}
BIN=${AIOCONN_BIN:?set AIOCONN_BIN}
REF=${AIOCONNECTORS_PATH:?set AIOCONNECTORS_PATH (1.0.33)}
NEW=${AIOCONNECTORS_163_PATH:?set AIOCONNECTORS_163_PATH}
PY=${PYTHON:-python3}
SSL='"use_ssl": false'
[ "$MODE" = allow_all ] && SSL='"use_ssl": true, "ssl_allow_all": true'
D=$(mktemp -d /tmp/ac163.XXXX); mkdir -p "$D/s" "$D/c"
P=$($PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$BIN" create_certificates "$D/certs" >/dev/null 2>&1
(cd "$D" && PYTHONPATH="$NEW" timeout 60 $PY -m aioconnectors create_certificates "$D/pycerts" >/dev/null 2>&1)
cat > "$D/server.json" <<EOF
{"is_server": true, "server_sockaddr": ["127.0.0.1", $P], $SSL, "certificates_directory_path": "$D/certs",
 "connector_files_dirpath": "$D/s", "default_logger_dirpath": "$D/s", "send_message_types": ["any"], "recv_message_types": ["any"]}
EOF
cat > "$D/client.json" <<EOF
{"is_server": false, "client_name": "client1", "server_sockaddr": ["127.0.0.1", $P], $SSL, "certificates_directory_path": "$D/pycerts",
 "connector_files_dirpath": "$D/c", "default_logger_dirpath": "$D/c", "send_message_types": ["any"], "recv_message_types": ["any"]}
EOF
cat > "$D/app.py" <<'EOF'
import asyncio, os, sys
import aioconnectors
cfg, name, peer = sys.argv[1], sys.argv[2], sys.argv[3]
api = aioconnectors.ConnectorAPI(config_file_path=cfg)
got = []
async def on_msg(logger, transport_json, data, binary):
    got.append(data)
async def main():
    asyncio.get_event_loop().create_task(api.start_waiting_for_messages(message_type='any', message_received_cb=on_msg))
    await asyncio.sleep(1.5)
    for i in range(3 if name != 'server' or os.environ.get('SERVER_SENDS', '1') == '1' else 0):
        kw = {} if peer == '-' else {'destination_id': peer}
        await api.send_message(message_type='any', data=f'{name} says {i}', **kw)
    for _ in range(60):
        if len(got) >= 3 or (name != 'server' and os.environ.get('SERVER_SENDS', '1') != '1'):
            break
        await asyncio.sleep(0.1)
    print(name, 'received', len(got), 'of 3:', got, flush=True)
    api.stop_waiting_for_messages(message_type='any')
asyncio.run(main())
EOF
"$BIN" create_connector "$D/server.json" > "$D/server.out" 2>&1 & SP=$!
(cd "$D" && PYTHONPATH="$NEW" exec $PY -m aioconnectors create_connector "$D/client.json" > "$D/client.out" 2>&1) & CP=$!
sleep 4
(cd "$D" && PYTHONPATH="$REF" timeout 20 $PY app.py server.json server client1 > server-app.out 2>&1) & A1=$!
(cd "$D" && PYTHONPATH="$NEW" timeout 20 $PY app.py client.json client1 - > client-app.out 2>&1) & A2=$!
wait $A1 $A2
cat "$D/server-app.out" "$D/client-app.out" | grep received
kill $SP $CP 2>/dev/null; wait $SP $CP 2>/dev/null
echo "logs: $D"
