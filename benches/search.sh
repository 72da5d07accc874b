#!/usr/bin/env bash
# Search benchmarks: indexing throughput on online_shopping_10_cats (all 60,979 comments),
# query latency over 1,000 mixed Chinese/English queries (online_shopping + twitter_airline,
# with a linear-scan baseline in the same run), and `vocmine serve` under wrk.
# Usage: bash benches/search.sh [OUT_DIR]   (needs ../shared/corpora; installs wrk if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benches/results}
mkdir -p "$OUT"
C=../shared/corpora
cargo build --release --quiet
V=target/release/vocmine
TMP=$(mktemp -d)
trap 'kill $SERVE 2>/dev/null || true; rm -rf "$TMP"' EXIT
SERVE=

echo "== indexing: online_shopping_10_cats (train+dev+test)"
$V bench-search --data $C/online_shopping_10_cats/train.jsonl --data $C/online_shopping_10_cats/dev.jsonl \
  --data $C/online_shopping_10_cats/test.jsonl --queries 1000 --out "$OUT/search_online_shopping.json" >/dev/null
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps(r['index']), '\n', json.dumps(r['queries']))" "$OUT/search_online_shopping.json"

echo "== mixed zh/en: online_shopping + twitter_airline"
$V bench-search --data $C/online_shopping_10_cats/train.jsonl --data $C/online_shopping_10_cats/dev.jsonl \
  --data $C/online_shopping_10_cats/test.jsonl --data $C/twitter_airline/train.jsonl \
  --data $C/twitter_airline/dev.jsonl --data $C/twitter_airline/test.jsonl \
  --queries 1000 --index "$TMP/index" --queries-out "$TMP/queries.txt" --out "$OUT/search_mixed.json" >/dev/null
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); [print(k, json.dumps(r[k])) for k in ('index','queries','scan_baseline')]" "$OUT/search_mixed.json"

echo "== serve under wrk"
command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null 2>&1 || (apt-get update >/dev/null && apt-get install -y wrk >/dev/null); }
PORT=$((20000 + RANDOM % 10000))
$V serve "$TMP/index" --addr 127.0.0.1:$PORT 2>"$TMP/serve.log" &
SERVE=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
QUERIES="$TMP/queries.txt" wrk -t2 -c${CONNECTIONS:-16} -d${DURATION:-30s} --latency -s benches/wrk_search.lua \
  "http://127.0.0.1:$PORT" | tee "$OUT/search_wrk.txt"
