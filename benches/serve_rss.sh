#!/usr/bin/env bash
# RSS of `vocmine serve --score --index RUN` over a bounded load (issue 36 item 6): CLIENTS
# concurrent clients (one comment per request, keep-alive, to 127.0.0.1 only) for SECONDS,
# going round the 300 texts of corpora/sample/comments.csv (their ids are their content, so
# every round upserts the same 300 index documents and appends to RUN/served.jsonl); the
# server's RSS (VmRSS of /proc/PID/status, with its RssAnon and RssFile parts) and comments
# scored are sampled every 10 s. The
# load stops by itself; the server is stopped with SIGTERM.
# Writes OUT_DIR/serve_rss_YYYYMMDD.md: start / max / end RSS, the slope (least squares, over
# the whole load and its second half), and every sample.
# Usage: bash benches/serve_rss.sh [OUT_DIR] [SECONDS=600] [CLIENTS=8]
#   VOCMINE_BIN=path/to/vocmine skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benches/results}
SECONDS_LOAD=${2:-600}
CLIENTS=${3:-8}
mkdir -p "$OUT"
if [ -z "${VOCMINE_BIN:-}" ]; then
  cargo build --release --quiet
  V=${CARGO_TARGET_DIR:-target}/release/vocmine
else
  V=$VOCMINE_BIN
fi
TMP=$(mktemp -d)
SERVE=
trap '[ -n "$SERVE" ] && kill $SERVE 2>/dev/null; rm -rf "$TMP"' EXIT
python3 benches/sample_texts.py "$TMP/texts.jsonl" --no-id

$V serve --score --index "$TMP/run" --addr 127.0.0.1:0 2>"$TMP/serve.log" &
SERVE=$!
for _ in $(seq 600); do grep -q "serving on" "$TMP/serve.log" && break; sleep 0.1; done
ADDR=$(grep -o 'http://[0-9.:]*' "$TMP/serve.log" | head -1 | sed 's|http://||')
case "$ADDR" in 127.0.0.1:*) ;; *) echo "not on loopback: $ADDR" >&2; exit 1 ;; esac
python3 benches/serve_load.py "$ADDR" "$TMP/texts.jsonl" 1 >/dev/null   # warm-up: each text once

# VmRSS, and its anonymous (heap) and file-backed (the index's mmapped segments) parts, KiB
rss_kib() { awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s ", $2}' "/proc/$SERVE/status"; }
scored() { curl -s "http://$ADDR/metrics" | awk '/^vocmine_comments_scored_total / {print $2}'; }
LOAD_AVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
python3 benches/serve_load.py "$ADDR" "$TMP/texts.jsonl" "$CLIENTS" "$SECONDS_LOAD" > "$TMP/load.json" &
LOAD=$!
T0=$(date +%s)
: > "$TMP/samples.txt"
while :; do
  T=$(( $(date +%s) - T0 ))
  echo "$T $(rss_kib) $(scored)" | tee -a "$TMP/samples.txt"
  kill -0 $LOAD 2>/dev/null || break
  sleep 10
done
wait $LOAD
LOAD_AVG_END=$(cut -d' ' -f1-3 /proc/loadavg)
kill -TERM $SERVE; wait $SERVE || true; SERVE=
SERVED=$(wc -l < "$TMP/run/served.jsonl")

REPORT="$OUT/serve_rss_$(date -u +%Y%m%d).md"
python3 - "$TMP/samples.txt" "$TMP/load.json" "$SECONDS_LOAD" "$CLIENTS" "$SERVED" "$LOAD_AVG_START" "$LOAD_AVG_END" > "$REPORT" <<'PY'
import json, subprocess, sys
samples = [tuple(float(x) for x in l.split()) for l in open(sys.argv[1]) if l.strip()]
load = json.load(open(sys.argv[2]))
secs, clients, served, la0, la1 = sys.argv[3:8]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
isa = ", ".join(f for f in ["avx2", "avx512f", "avx512_vnni", "amx_tile"] if f in flags)
mib = [(t, r / 1024, n) for t, r, a, f, n in samples]
anon = [(t, a / 1024) for t, r, a, f, n in samples]
mapped = [(t, f / 1024) for t, r, a, f, n in samples]

def slope(pts):  # MiB per minute, least squares
    if len(pts) < 2:
        return 0.0
    n = len(pts); mt = sum(p[0] for p in pts) / n; mr = sum(p[1] for p in pts) / n
    den = sum((p[0] - mt) ** 2 for p in pts)
    return 60 * sum((p[0] - mt) * (p[1] - mr) for p in pts) / den if den else 0.0

half = lambda pts: [p for p in pts if p[0] >= pts[-1][0] / 2]
print(f"# RSS of `vocmine serve --score --index RUN` over a {secs} s load at {clients} clients")
print()
print(f"CPU: {cpu} ({isa}), {cores} cores, shared with another engineer's builds and benchmarks")
print(f"during this run (load average {la0} at the start, {la1} at the end), so throughput is")
print("lower than on an idle machine; RSS is what this measures.")
print(f"Server: `vocmine serve --score --index RUN` (defaults: batch wait 2 ms, max batch 64, commit")
print("every 2 s), after a warm-up of each text once; clients: benches/serve_load.py, one comment")
print("per request, keep-alive, 127.0.0.1 only, going round the 300 texts of")
print("corpora/sample/comments.csv (ids = content, so the index holds 300 documents, upserted again")
print(f"each round, while RUN/served.jsonl grows: {served} lines at the end). RSS: VmRSS of")
print("/proc/PID/status every 10 s, with its parts: RssAnon (heap) and RssFile (file-backed: the")
print("binary and the index's mmapped segments, which tantivy merges and replaces). Script:")
print("`bash benches/serve_rss.sh`.")
print()
print(f"Load: {load['comments']} comments in {load['seconds']} s ({load['comments_per_s']}/s), "
      f"p50 {load['p50_ms']} ms, p99 {load['p99_ms']} ms, {load['errors']} errors.")
print()
print("| MiB | VmRSS | RssAnon | RssFile |")
print("|---|---:|---:|---:|")
cols = [mib, anon, mapped]
row = lambda name, f: print(f"| {name} | " + " | ".join(f(c) for c in cols) + " |")
row("start (load begins)", lambda c: f"{c[0][1]:.1f}")
row("max", lambda c: f"{max(p[1] for p in c):.1f}")
row("end", lambda c: f"{c[-1][1]:.1f}")
row("slope, whole load (MiB/min)", lambda c: f"{slope(c):+.2f}")
row("slope, second half (MiB/min)", lambda c: f"{slope(half(c)):+.2f}")
print()
print("Samples:")
print()
print("| s | VmRSS MiB | RssAnon MiB | RssFile MiB | comments scored |")
print("|---:|---:|---:|---:|---:|")
for (t, r, n), (_, a), (_, f) in zip(mib, anon, mapped):
    print(f"| {t:.0f} | {r:.1f} | {a:.1f} | {f:.1f} | {n:.0f} |")
PY
cat "$REPORT"
