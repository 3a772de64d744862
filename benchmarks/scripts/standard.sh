#!/bin/sh
# Runs the standard scenario set REPEAT times each (default 3), one JSON file per run in OUT
# (default a new temp dir), prints best/median tables with summarize.py and, with WRITE=1,
# rewrites the generated part of benchmarks/RESULTS.md (everything above the line
# "<!-- hand-written -->"; what follows that line is kept as it is).
# Usage: benchmarks/scripts/standard.sh [BIN]
# env: REPEAT, OUT, ONLY=<name substring>, WRITE=1, PY=1 (also the Python 1.0.33 runs, needs
# AIOCONNECTORS_PATH), BIG=1 (also the 4 GB file transfers: needs ~13 GB free in FILEDIR),
# FILEDIR (default the bench's temp dir), SKIP_RATE=1 (skip the long rate scenarios),
# BIG_REPEAT (runs of each 4 GB transfer, default 1). The at_least_once scenarios set RUN_ENV
# (AIOCONN_AT_LEAST_ONCE=true), which goes into the environment of the bench and its connectors.
# NATS=1 also measures a nats-server on this machine with the same rate and request/reply
# workloads (benchmarks/natsref, built here; NATS_SERVER: the nats-server binary, default the one
# on PATH), each run alternating with aioconn's run of the same scenario.
set -u
BIN=${1:-bin/aioconn}
REPEAT=${REPEAT:-3}
OUT=${OUT:-$(mktemp -d)}
HERE=$(dirname "$0")
RESULTS=${RESULTS:-$HERE/../RESULTS.md}
FILEDIR=${FILEDIR:-}
RUN_ENV=
mkdir -p "$OUT"
# the commit the binary was presumably built from (HEAD when the runs start)
[ -f "$OUT/commit" ] || git -C "$HERE" log -1 --format='%h %s' > "$OUT/commit" 2>/dev/null
load() { cut -d' ' -f1-3 /proc/loadavg; }
# one run number i of scenario name: runi i name args...
runi() {
  i=$1; name=$2; shift 2
  case "$name" in *${ONLY:-}*) ;; *) return ;; esac
  echo "${RUN_ENV:+$RUN_ENV }$*" > "$OUT/$name.cmd"
  before=$(load)
  echo "== $name #$i: ${RUN_ENV:+$RUN_ENV }$BIN bench $* (load $before)" >&2
  env ${RUN_ENV:-} timeout 900 "$BIN" bench "$@" --json --quiet > "$OUT/$name.$i.json" || echo "   (exit $?)" >&2
  echo "{\"name\": \"$name\", \"run\": $i, \"load_before\": \"$before\", \"load_after\": \"$(load)\"}" > "$OUT/$name.$i.load"
}
NATS_PID=
if [ "${NATS:-0}" = 1 ]; then
  (cd "$HERE/../natsref" && go build -o "$OUT/natsref" .) || exit 1
  NATS_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  "${NATS_SERVER:-nats-server}" -a 127.0.0.1 -p "$NATS_PORT" > "$OUT/nats-server.log" 2>&1 &
  NATS_PID=$!
  trap 'kill $NATS_PID 2>/dev/null' EXIT
  "${NATS_SERVER:-nats-server}" --version > "$OUT/nats-version" 2>&1
  # ready when its port accepts (bounded: 10 s), then a warm-up run whose failure stops the set
  python3 -c 'import socket,sys,time
end = time.time() + 10
while True:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close(); break
    except OSError:
        if time.time() > end: sys.exit("nats-server not accepting on port " + sys.argv[1])
        time.sleep(0.05)' "$NATS_PORT" || exit 1
  "$OUT/natsref" --url "nats://127.0.0.1:$NATS_PORT" --mode rate --duration 2s > "$OUT/nats-warmup.log" 2>&1 ||
    { echo "natsref warm-up failed: $OUT/nats-warmup.log" >&2; exit 1; }
fi
# one NATS run number i of scenario name (NATS=1 only): natsi i name natsref-args...
natsi() {
  i=$1; name=$2; shift 2
  [ -n "$NATS_PID" ] || return 0
  case "$name" in *${ONLY:-}*) ;; *) return ;; esac
  before=$(load)
  echo "== $name #$i: natsref $* (load $before)" >&2
  timeout 600 "$OUT/natsref" --url "nats://127.0.0.1:$NATS_PORT" "$@" --json > "$OUT/$name.$i.nats" || echo "   (exit $?)" >&2
  echo "{\"name\": \"$name\", \"run\": $i, \"load_before\": \"$before\", \"load_after\": \"$(load)\", \"args\": \"$*\"}" > "$OUT/$name.$i.natsload"
}
run() { # name, args...: N (default REPEAT) runs in a row
  r=1
  while [ $r -le "${N:-$REPEAT}" ]; do
    runi $r "$@"
    r=$((r + 1))
  done
}
fd() { [ -n "$FILEDIR" ] && echo "--file-dir $FILEDIR"; }
# The TLS scenarios are compared with plaintext (issue 5: TLS >= 75 %): their runs alternate with
# the plaintext ones so that a noisy minute does not fall on one side only.
k=1
while [ $k -le "$REPEAT" ]; do
  runi $k go-throughput-100 --mode throughput --count 2000000 --size 100
  runi $k go-tls-throughput-100 --tls --mode throughput --count 2000000 --size 100
  runi $k go-tls-allow-all-throughput-100 --tls-allow-all --mode throughput --count 2000000 --size 100
  natsi $k nats-throughput-100 --mode throughput --count 2000000 --size 100
  k=$((k + 1))
done
run go-throughput-1k --mode throughput --count 1000000 --size 1024
if [ "${SKIP_RATE:-0}" != 1 ]; then
  # alternating: the 100 client connectors in one process (the default), one process per client
  # (--host-clients 1), NATS
  k=1
  while [ $k -le "$REPEAT" ]; do
    runi $k go-rate-100x40 --clients 100 --rate 40 --duration 20s
    runi $k go-rate-100x40-procs --clients 100 --rate 40 --duration 20s --host-clients 1
    natsi $k nats-rate-100x40 --mode rate --clients 100 --rate 40 --duration 20s --size 100
    k=$((k + 1))
  done
  run go-rate-100x1000 --clients 100 --rate 1000 --duration 10s
  run go-rate-100x4000 --clients 100 --rate 4000 --duration 10s
fi
run go-pubsub-10 --mode pubsub --subscribers 10 --count 300000
run go-pubsub-100 --mode pubsub --subscribers 100 --count 100000
k=1
while [ $k -le "$REPEAT" ]; do
  runi $k go-reqrep --mode reqrep --count 20000 --duration 5s --concurrency 16
  natsi $k nats-reqrep --mode reqrep --count 20000 --size 100
  k=$((k + 1))
done
run go-embedded-throughput-100 --path embedded --mode throughput --count 10000000 --window 64000 --size 100
run go-embedded-batch-throughput-100 --path embedded --mode throughput --count 10000000 --window 64000 --batch 128 --size 100
RUN_ENV=AIOCONN_AT_LEAST_ONCE=true
run go-alo-throughput-100 --mode throughput --count 2000000 --size 100
if [ "${SKIP_RATE:-0}" != 1 ]; then
  k=1
  while [ $k -le "$REPEAT" ]; do
    runi $k go-alo-rate-100x40 --clients 100 --rate 40 --duration 20s
    runi $k go-alo-rate-100x40-procs --clients 100 --rate 40 --duration 20s --host-clients 1
    k=$((k + 1))
  done
fi
RUN_ENV=
run go-file-100m --mode file --file-size 100000000 $(fd)
run go-persist-300k --mode persist --count 300000 --size 100
run go-certstorm-200 --mode certstorm --clients 200 --storm-rate 1000
if [ "${BIG:-0}" = 1 ]; then
  # once each by default (BIG_REPEAT): at the time of writing the server connector's RSS grew to
  # ~3 x the file size (13 GB for 4 GB), too much to repeat on a shared machine
  N=${BIG_REPEAT:-1}
  run go-file-4g --mode file --file-size 4000000000 $(fd)
  run go-file-4g-chunked --mode file --file-size 4000000000 --file-chunk 1000000000 $(fd)   # as the 1.0.33 API splits it
  N=
fi
if [ "${PY:-0}" = 1 ]; then
  run py-throughput-100 --target python --mode throughput --count 60000 --size 100 --window 2000
  run py-throughput-1k --target python --mode throughput --count 40000 --size 1024 --window 2000
  run py-rate-100x40 --target python --clients 100 --rate 40 --duration 10s --drain 5s
  run py-pubsub-10 --target python --mode pubsub --subscribers 10 --count 5000 --window 1000
  run py-reqrep --target python --mode reqrep --count 100 --duration 5s --concurrency 16
  run py-file-100m --target python --mode file --file-size 100000000 $(fd)
  run py-tls-throughput-100 --target python --tls --mode throughput --count 20000 --size 100 --window 2000
fi
if [ "${WRITE:-0}" = 1 ]; then
  python3 "$HERE/summarize.py" "$OUT" --bin "$BIN" --rewrite "$RESULTS"
else
  python3 "$HERE/summarize.py" "$OUT" --bin "$BIN"
fi
echo "json in $OUT" >&2
