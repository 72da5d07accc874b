#!/usr/bin/env bash
# POST /score throughput and latency against `vocmine score` on the same texts, in one run:
# comments/s at 1, 8 and 32 concurrent clients (one comment per request, keep-alive, to
# 127.0.0.1 only) and one client posting 16 comments a request, p50 / p99 latency (of a
# request), and the batch throughput of `vocmine score`.
# Usage: bash benches/serve.sh [OUT_DIR]   (texts: corpora/sample/comments.csv, 300 comments)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benches/results}
mkdir -p "$OUT"
V=${CARGO_TARGET_DIR:-target}/release/vocmine
cargo build --release --quiet
TMP=$(mktemp -d)
SERVE=
trap '[ -n "$SERVE" ] && kill $SERVE 2>/dev/null; rm -rf "$TMP"' EXIT
python3 benches/sample_texts.py "$TMP/texts.jsonl"
N=$(wc -l < "$TMP/texts.jsonl")
REPORT="$OUT/serve_$(date -u +%Y%m%d).md"
{
  echo "# POST /score vs vocmine score ($(date -u +%Y-%m-%d))"
  echo
  echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores (shared with other jobs);"
  echo "$N comments of corpora/sample/comments.csv; server: \`vocmine serve --score\` (defaults:"
  echo "batch wait 2 ms, max batch 64); clients: benches/serve_load.py (Python threads, one comment per request,"
  echo "keep-alive), on the same machine."
  echo
} > "$REPORT"
echo "== vocmine score (batch)"
/usr/bin/time -f "%e s wall" $V score "$TMP/texts.jsonl" --out "$TMP/run" --no-index --no-embeddings 2>&1 | tee "$TMP/score.txt"
BATCH=$(grep -o '[0-9.]* comments/s' "$TMP/score.txt" | head -1 | cut -d' ' -f1)
echo "== vocmine serve --score"
$V serve --score --addr 127.0.0.1:0 2>"$TMP/serve.log" &
SERVE=$!
for _ in $(seq 300); do grep -q "serving on" "$TMP/serve.log" && break; sleep 0.1; done
ADDR=$(grep -o 'http://[0-9.:]*' "$TMP/serve.log" | head -1 | sed 's|http://||')
python3 benches/serve_load.py "$ADDR" "$TMP/texts.jsonl" 1 >/dev/null   # warm-up
{
  echo "| clients | comments a request | comments/s | vs \`vocmine score\` ($BATCH/s) | p50 ms | p99 ms | errors |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
} >> "$REPORT"
for CP in 1:1 8:1 32:1 1:16; do
  R=$(python3 benches/serve_load.py "$ADDR" "$TMP/texts.jsonl" ${CP%:*} 0 ${CP#*:})
  echo "$R"
  python3 -c "
import json, sys
r = json.loads(sys.argv[1]); b = float(sys.argv[2])
print(f\"| {r['clients']} | {r['per_request']} | {r['comments_per_s']} | {r['comments_per_s'] / b:.2f} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} |\")
" "$R" "$BATCH" >> "$REPORT"
done
echo >> "$REPORT"
echo "Batch sizes seen by the encoder (from /metrics):" >> "$REPORT"
echo '```' >> "$REPORT"
curl -s "http://$ADDR/metrics" | grep -E '^vocmine_batch_size_(sum|count)' >> "$REPORT"
echo '```' >> "$REPORT"
kill -TERM $SERVE; wait $SERVE || true; SERVE=
cat "$REPORT"
