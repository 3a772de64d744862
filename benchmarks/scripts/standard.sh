#!/bin/sh
# Runs the standard scenario set REPEAT times each (default 3) and writes one JSON file per run
# into OUT (default a new temp dir); then prints best/median with summarize.py.
# Usage: benchmarks/scripts/standard.sh [BIN] ; env: REPEAT, OUT, PY=1 (also the Python 1.0.33 runs,
# needs AIOCONNECTORS_PATH), ONLY=<name substring>.
set -u
BIN=${1:-bin/aioconn}
REPEAT=${REPEAT:-3}
OUT=${OUT:-$(mktemp -d)}
HERE=$(dirname "$0")
run() { # name, args...
  name=$1; shift
  case "$name" in *${ONLY:-}*) ;; *) return ;; esac
  i=1
  while [ $i -le "$REPEAT" ]; do
    echo "== $name #$i: $BIN bench $*" >&2
    "$BIN" bench "$@" --json --quiet > "$OUT/$name.$i.json" || echo "   (exit $?)" >&2
    i=$((i + 1))
  done
}
run go-throughput-100 --mode throughput --count 2000000 --size 100
run go-throughput-1k --mode throughput --count 1000000 --size 1024
run go-rate-100x40 --clients 100 --rate 40 --duration 20s
run go-rate-100x1000 --clients 100 --rate 1000 --duration 10s
run go-rate-100x4000 --clients 100 --rate 4000 --duration 10s
run go-pubsub-10 --mode pubsub --subscribers 10 --count 300000
run go-reqrep --mode reqrep --count 20000 --duration 5s --concurrency 16
if [ "${PY:-0}" = 1 ]; then
  run py-throughput-100 --target python --mode throughput --count 60000 --size 100 --window 2000
  run py-throughput-1k --target python --mode throughput --count 40000 --size 1024 --window 2000
  run py-rate-100x40 --target python --clients 100 --rate 40 --duration 10s --drain 5s
  run py-pubsub-10 --target python --mode pubsub --subscribers 10 --count 5000 --window 1000
  run py-reqrep --target python --mode reqrep --count 100 --duration 5s --concurrency 16
fi
python3 "$HERE/summarize.py" "$OUT"
echo "json in $OUT" >&2
