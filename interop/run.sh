#!/usr/bin/env bash
# Interoperability runner: aioconn (Go) vs the Python aioconnectors 1.0.33 reference.
#
# Usage:
#   AIOCONNECTORS_PATH=/path/to/aioconnectors-1.0.33 [AIOCONN_BIN=/path/to/aioconn] interop/run.sh \
#       [--group p2p|tls|pubsub|files|persist]... [row...]
#   Groups (default: all): p2p = plaintext point-to-point; tls = p2p scenarios x MODE (plain, allow_all, strict)
#   plus the certificate workflow; pubsub; files; persist. A row argument selects rows by name (a p2p
#   scenario, "ping@strict", or "ping" for every mode of ping).
#
# For every scenario and every pairing (server impl + client impl) this script writes fresh configs into
# a short temp dir, starts the two connectors as background processes, waits for readiness, runs the
# Python scenario driver (interop/scenarios.py, which uses the real ConnectorAPI / ConnectorRemoteTool),
# kills only the PIDs it started and prints a pass/fail matrix. Exit status: 0 if no cell failed.
#
# Environment:
#   AIOCONNECTORS_PATH  directory holding the reference package (the dir containing aioconnectors/). Required.
#   AIOCONN_BIN         the Go binary; unset => only the py-server+py-client column runs.
#   PYTHON              python interpreter (default python3).
#   INTEROP_PAIRINGS    optional space-separated subset of: pp gp pg gg (server letter first).
#   INTEROP_KEEP        1 => keep temp dirs of passing runs too (failing runs are always kept).
#   INTEROP_SCENARIO_TIMEOUT  hard cap in seconds for one driver run (default 90; scenarios have their own, lower, bounds).
#   INTEROP_PAIRINGS also filters the columns of the other groups (3-letter codes for pubsub and persist).
set -u

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
SCEN_TIMEOUT="${INTEROP_SCENARIO_TIMEOUT:-90}"
READY_TIMEOUT=10

if [ -z "${AIOCONNECTORS_PATH:-}" ]; then
    echo "SKIP: AIOCONNECTORS_PATH is not set. Point it at an extracted aioconnectors 1.0.33 tree (see interop/README.md)."
    exit 0
fi
if [ ! -f "${AIOCONNECTORS_PATH}/aioconnectors/__init__.py" ]; then
    echo "SKIP: AIOCONNECTORS_PATH=${AIOCONNECTORS_PATH} does not contain aioconnectors/__init__.py (see interop/README.md)."
    exit 0
fi
AIOCONNECTORS_PATH="$(cd "$AIOCONNECTORS_PATH" && pwd)"
export PYTHONPATH="${AIOCONNECTORS_PATH}${PYTHONPATH:+:$PYTHONPATH}"

if [ -n "${AIOCONN_BIN:-}" ]; then
    if [ ! -x "$AIOCONN_BIN" ]; then
        echo "ERROR: AIOCONN_BIN=$AIOCONN_BIN is not an executable file" >&2
        exit 2
    fi
    AIOCONN_BIN="$(cd "$(dirname "$AIOCONN_BIN")" && pwd)/$(basename "$AIOCONN_BIN")"
fi

ALL_GROUPS="p2p tls pubsub files persist"
SEL_GROUPS=""
ROWS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --group|-g)
            [ $# -ge 2 ] || { echo "ERROR: --group needs a value" >&2; exit 2; }
            SEL_GROUPS="$SEL_GROUPS ${2//,/ }"; shift 2 ;;
        --group=*) v="${1#--group=}"; SEL_GROUPS="$SEL_GROUPS ${v//,/ }"; shift ;;
        -*) echo "ERROR: unknown option $1" >&2; exit 2 ;;
        *) ROWS="$ROWS $1"; shift ;;
    esac
done
[ -z "$SEL_GROUPS" ] && SEL_GROUPS="$ALL_GROUPS"
for g in $SEL_GROUPS; do
    case " $ALL_GROUPS " in *" $g "*) ;; *) echo "ERROR: unknown group '$g'. Known: $ALL_GROUPS" >&2; exit 2 ;; esac
done
# all cells of the selected groups: "group row col"
CELLS_FILE="$(mktemp /tmp/aicellsXXXXXX)"
for g in $SEL_GROUPS; do
    "$PYTHON" "$HERE/scenarios.py" cells "$g" | sed "s/^/$g /" >> "$CELLS_FILE" || { echo "ERROR: cannot list cells of $g" >&2; exit 2; }
done
if [ -n "$ROWS" ]; then
    for r in $ROWS; do
        awk -v r="$r" '$2 == r || $2 ~ "^"r"@" {f=1} END {exit !f}' "$CELLS_FILE" || {
            echo "ERROR: unknown row '$r' in groups:$SEL_GROUPS. Known: $(awk '{print $2}' "$CELLS_FILE" | sort -u | tr '\n' ' ')" >&2
            rm -f "$CELLS_FILE"; exit 2; }
    done
fi

PAIRINGS="${INTEROP_PAIRINGS:-}"

pairing_name() {
    case "$1" in
        pp) echo "py-server+py-client" ;; gp) echo "go-server+py-client" ;;
        pg) echo "py-server+go-client" ;; gg) echo "go-server+go-client" ;;
    esac
}

# impl_cmd <p|g>: the command prefix that runs "create_connector <cfg>" for that implementation.
impl_cmd() {
    if [ "$1" = p ]; then echo "$PYTHON -m aioconnectors"; else echo "${AIOCONN_BIN:-/nonexistent-aioconn}"; fi
}

free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Extra config keys some scenarios need (JSON fragment starting with a comma, or empty).
scenario_extra() { # scenario role(server|client)
    case "$1,$2" in
        pubsub,server) echo ', "pubsub_central_broker": true' ;;
        pubsub,client) echo ', "subscribe_message_types": ["other"]' ;;
        # SIGKILLed server restarted by the driver: stale socket files and the port must be reusable
        reconnect,*) echo ', "reuse_server_sockaddr": true, "reuse_uds_path_send_to_connector": true, "reuse_uds_path_commander_server": true' ;;
        # the reference server cannot re-bind its port after stop (TIME_WAIT) without SO_REUSEADDR
        tool_stop_start,server|tool_restart,server) echo ', "reuse_server_sockaddr": true' ;;
        *) echo '' ;;
    esac
}

write_configs() { # dir port scenario
    local d="$1" port="$2" extra
    extra="$(scenario_extra "$3" server)"
    mkdir -p "$d/s" "$d/c"
    cat > "$d/server.json" <<EOF
{
    "is_server": true,
    "server_sockaddr": ["127.0.0.1", $port],
    "use_ssl": false,
    "ssl_allow_all": false,
    "connector_files_dirpath": "$d/s",
    "default_logger_dirpath": "$d/s",
    "default_logger_log_level": "INFO",
    "default_logger_rotate": false,
    "send_message_types": ["any", "other", "unrecv"],
    "recv_message_types": ["any", "other"],
    "disk_persistence_send": false,
    "disk_persistence_recv": false,
    "debug_msg_counts": false,
    "silent": true,
    "uds_path_receive_preserve_socket": true,
    "uds_path_send_preserve_socket": true$extra
}
EOF
    extra="$(scenario_extra "$3" client)"
    cat > "$d/client.json" <<EOF
{
    "is_server": false,
    "client_name": "client1",
    "server_sockaddr": ["127.0.0.1", $port],
    "use_ssl": false,
    "ssl_allow_all": false,
    "connector_files_dirpath": "$d/c",
    "default_logger_dirpath": "$d/c",
    "default_logger_log_level": "INFO",
    "default_logger_rotate": false,
    "send_message_types": ["any", "other", "unrecv"],
    "recv_message_types": ["any", "other"],
    "disk_persistence_send": false,
    "disk_persistence_recv": false,
    "debug_msg_counts": false,
    "silent": true,
    "enable_client_try_reconnect": true,
    "uds_path_receive_preserve_socket": true,
    "uds_path_send_preserve_socket": true$extra
}
EOF
}

# wait_files <deadline-seconds> <file>...: poll until every file exists.
wait_files() {
    local limit="$1"; shift
    local end=$(( $(date +%s%N) / 1000000 + limit * 1000 )) f missing
    while :; do
        missing=""
        for f in "$@"; do [ -e "$f" ] || missing="$f"; done
        [ -z "$missing" ] && return 0
        if [ -n "${WATCH_PID:-}" ] && ! kill -0 "$WATCH_PID" 2>/dev/null; then
            echo "connector process $WATCH_PID exited before creating $missing" >&2; return 1
        fi
        [ $(( $(date +%s%N) / 1000000 )) -ge $end ] && { echo "timeout waiting for $missing" >&2; return 1; }
        sleep 0.05
    done
}

# wait_listen <deadline-seconds> <port>: poll the kernel's socket table until something LISTENs on the port
# (the server's socket files can appear before its TCP listener; a client that connects too early only
# retries after 5 s).
wait_listen() {
    local limit="$1" hex end
    hex=$(printf ':%04X' "$2")
    end=$(( $(date +%s%N) / 1000000 + limit * 1000 ))
    while :; do
        awk -v p="$hex" '$2 ~ p"$" && $4 == "0A" {f=1} END {exit !f}' /proc/net/tcp /proc/net/tcp6 2>/dev/null && return 0
        if [ -n "${WATCH_PID:-}" ] && ! kill -0 "$WATCH_PID" 2>/dev/null; then
            echo "connector process $WATCH_PID exited before listening on port $2" >&2; return 1
        fi
        [ $(( $(date +%s%N) / 1000000 )) -ge $end ] && { echo "timeout waiting for a listener on port $2" >&2; return 1; }
        sleep 0.05
    done
}

# Every PID this script started, so that cleanup kills exactly those.
STARTED_PIDS=""
kill_started() { # dir
    local d="$1" pids p i
    pids="$STARTED_PIDS"
    [ -f "$d/extra_pids" ] && pids="$pids $(cat "$d/extra_pids")"   # restarted by the driver (reconnect scenario)
    for p in $pids; do kill -TERM "$p" 2>/dev/null; done
    for p in $pids; do
        for i in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$p" 2>/dev/null
    done
    STARTED_PIDS=""
}
CUR_DIR=""
cleanup_on_signal() {
    local p
    [ -n "${CELLS_FILE:-}" ] && rm -f "$CELLS_FILE"
    for p in $STARTED_PIDS $( [ -n "$CUR_DIR" ] && cat "$CUR_DIR/extra_pids" 2>/dev/null ); do
        kill -KILL "$p" 2>/dev/null
    done
    STARTED_PIDS=""
}
trap 'cleanup_on_signal' EXIT
trap 'cleanup_on_signal; exit 130' INT TERM HUP PIPE

declare -A RESULT NOTE
run_cell() { # group row col
    local grp="$1" scen="$2" pr="$3" si="${3:0:1}" ci="${3:1:1}" d port scmd ccmd spid cpid rc start end sidf cidf
    local layout=standard note=""
    d="$(mktemp -d /tmp/aiXXXXXX)"; CUR_DIR="$d"
    port="$(free_port)"
    scmd="$(impl_cmd "$si")"; ccmd="$(impl_cmd "$ci")"
    sidf="127001_$port"
    start=$(date +%s%N)
    rc=0
    if [ "$grp" = p2p ]; then
        write_configs "$d" "$port" "$scen"
    else
        # configs (and the certificates tree of a tls cell) are written by the driver
        if IOP_PY_CMD="$(impl_cmd p)" IOP_GO_CMD="$(impl_cmd g)" \
           "$PYTHON" "$HERE/scenarios.py" prepare "$scen" "$pr" "$d" "$port" >"$d/prepare.out" 2>&1; then
            layout="$(sed -n 1p "$d/prepare.out")"; note="$(sed -n 2p "$d/prepare.out")"
        else
            rc=1; { echo "prepare failed:"; cat "$d/prepare.out"; } > "$d/ready.err"
        fi
    fi
    NOTE[$grp,$scen,$pr]="$note"
    if [ $rc -eq 0 ] && [ "$layout" = standard ]; then
    # server first (a client that finds no server only retries every 5 s)
    ( cd "$d" && exec $scmd create_connector "$d/server.json" ) >"$d/server.out" 2>&1 &
    spid=$!; disown "$spid"; STARTED_PIDS="$spid"; echo "$spid" > "$d/server.pid"
    WATCH_PID=$spid
    wait_files "$READY_TIMEOUT" "$d/s/uds_path_commander_$sidf" "$d/s/uds_path_send_to_connector_server_$sidf" 2>>"$d/ready.err" || rc=1
    [ $rc -eq 0 ] && { wait_listen "$READY_TIMEOUT" "$port" 2>>"$d/ready.err" || rc=1; }
    if [ $rc -eq 0 ]; then
        ( cd "$d" && exec $ccmd create_connector "$d/client.json" ) >"$d/client.out" 2>&1 &
        cpid=$!; disown "$cpid"; STARTED_PIDS="$STARTED_PIDS $cpid"; echo "$cpid" > "$d/client.pid"
        WATCH_PID=$cpid
        wait_files "$READY_TIMEOUT" "$d/c/uds_path_commander_client1" "$d/c/uds_path_send_to_connector_client_client1" 2>>"$d/ready.err" || rc=1
    fi
    fi
    if [ $rc -eq 0 ]; then
        IOP_SERVER_CMD="$scmd" IOP_CLIENT_CMD="$ccmd" \
        IOP_SERVER_IMPL="$si" IOP_CLIENT_IMPL="$ci" IOP_COL="$pr" \
        IOP_PY_CMD="$(impl_cmd p)" IOP_GO_CMD="$(impl_cmd g)" \
            timeout -k 5 "$SCEN_TIMEOUT" "$PYTHON" "$HERE/scenarios.py" run "$scen" "$d" >"$d/driver.out" 2>&1
        rc=$?
    else
        { echo "connectors not ready (limit ${READY_TIMEOUT}s):"; cat "$d/ready.err"; } >> "$d/driver.out"
    fi
    kill_started "$d"; CUR_DIR=""
    end=$(date +%s%N)
    local secs; secs=$(awk "BEGIN{printf \"%.1f\", ($end-$start)/1e9}")
    if [ $rc -eq 0 ]; then
        RESULT[$grp,$scen,$pr]="PASS ${secs}s"
        [ "${INTEROP_KEEP:-0}" = 1 ] || rm -rf "$d"
    else
        [ $rc -eq 124 ] && echo "driver killed after ${SCEN_TIMEOUT}s" >> "$d/driver.out"
        RESULT[$grp,$scen,$pr]="FAIL ${secs}s"
        FAILED=1
        echo "---- FAIL $grp $scen [$(col_label "$grp" "$pr")] (logs kept in $d) ----"
        tail -n 25 "$d/driver.out" | sed 's/^/    /'
        for f in server.out client.out server2.out client2.out client3.out writer.out replayer.out peer.out; do
            [ -s "$d/$f" ] && { echo "  -- $f (tail):"; tail -n 8 "$d/$f" | sed 's/^/    /'; }
        done
    fi
    printf '%-8s %-34s %-24s %s %s\n' "$grp" "$scen" "$(col_label "$grp" "$pr")" "${RESULT[$grp,$scen,$pr]}" "$note"
}

declare -A COLLABEL
col_label() { # group col
    echo "${COLLABEL[$1,$2]:-$2}"
}

FAILED=0
declare -A GCOLS
for g in $SEL_GROUPS; do
    while read -r c label; do COLLABEL[$g,$c]="$label"; GCOLS[$g]="${GCOLS[$g]:-} $c"; done \
        < <("$PYTHON" "$HERE/scenarios.py" columns "$g")
done
T0=$(date +%s%N)
while read -r grp scen pr; do
    if [ -n "$ROWS" ]; then
        sel=0
        for r in $ROWS; do case "$scen" in "$r"|"$r"@*) sel=1 ;; esac; done
        [ $sel = 1 ] || continue
    fi
    if [ -n "$PAIRINGS" ]; then
        case " $PAIRINGS " in *" $pr "*) ;; *) continue ;; esac
    fi
    if [[ "$pr" == *g* ]] && [ -z "${AIOCONN_BIN:-}" ]; then
        RESULT[$grp,$scen,$pr]="n/a"
        continue
    fi
    run_cell "$grp" "$scen" "$pr" < /dev/null
done < "$CELLS_FILE"
T1=$(date +%s%N)

echo
echo "Interop matrices (apps: the server-side Python app talks to the server connector, the client-side apps to their client connectors)"
for g in $SEL_GROUPS; do
    echo
    echo "== group $g"
    printf '%-34s' "row"
    for pr in ${GCOLS[$g]}; do printf ' %-24s' "$(col_label "$g" "$pr")"; done
    echo
    for scen in $(awk -v g="$g" '$1 == g {print $2}' "$CELLS_FILE" | uniq); do
        if [ -n "$ROWS" ]; then
            sel=0
            for r in $ROWS; do case "$scen" in "$r"|"$r"@*) sel=1 ;; esac; done
            [ $sel = 1 ] || continue
        fi
        printf '%-34s' "$scen"
        for pr in ${GCOLS[$g]}; do
            v="${RESULT[$g,$scen,$pr]:-n/a}"
            [ -n "${NOTE[$g,$scen,$pr]:-}" ] && v="$v ${NOTE[$g,$scen,$pr]}"
            printf ' %-24s' "$v"
        done
        echo
    done
done
rm -f "$CELLS_FILE"
echo
echo "total: $(awk "BEGIN{printf \"%.1f\", ($T1-$T0)/1e9}")s"
[ "$FAILED" = 0 ] && echo "RESULT: all run cells passed" || echo "RESULT: some cells FAILED"
exit $FAILED
