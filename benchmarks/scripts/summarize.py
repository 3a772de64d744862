"""Summarize `aioconn bench --json` files NAME.N.json: per NAME and phase, the best and the
median run (by delivered rate), as markdown table rows."""
import glob, json, os, statistics, sys

d = sys.argv[1]
groups = {}
for f in sorted(glob.glob(os.path.join(d, "*.json"))):
    name = os.path.basename(f).rsplit(".", 2)[0]
    try:
        res = json.load(open(f))
    except Exception:
        continue
    for ph in res.get("phases", []):
        cpu = {p["role"]: p for p in res.get("connectors", [])}
        groups.setdefault((name, ph["name"]), []).append((ph, cpu))

print("| scenario | phase | runs | delivered/s best | delivered/s median | lost (sum) | dup (sum) | p50 µs (median run) | p99 µs | p99.9 µs | max µs | conn CPU µs/msg | peak RSS MB (max process) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (name, phase), runs in groups.items():
    runs.sort(key=lambda r: r[0]["rate"])
    best = runs[-1][0]
    med, cpu = runs[(len(runs) - 1) // 2] if len(runs) % 2 == 0 else runs[len(runs) // 2]
    lat = med.get("latency") or {}
    rss = max((p["peak_rss_mb_max"] for p in cpu.values()), default=0)
    print(f"| {name} | {phase} | {len(runs)} | {best['rate']:.0f} | {med['rate']:.0f} | "
          f"{sum(r[0]['lost'] for r in runs)} | {sum(r[0]['duplicated'] for r in runs)} | "
          f"{lat.get('p50_us', 0):.1f} | {lat.get('p99_us', 0):.1f} | {lat.get('p99_9_us', 0):.1f} | {lat.get('max_us', 0):.1f} | "
          f"{med['connector_cpu_per_msg_us']:.2f} | {rss:.1f} |")
