#!/usr/bin/env bash
# Encoder throughput of vocmine next to the ONNX Runtime peer, on the same machine in one run.
#
#   bash benches/encoder_vs_peer.sh [PEER_VENV] [THREADS...]
#
# Texts: the 8,957 test texts of waimai_10k + online_shopping_10_cats + twitter_airline (the
# peer benchmark's set, in its order). For each thread count: `vocmine bench` (encoder only:
# tokenise + length-sorted batches of 32 + forward + pooling), `vocmine score` over the same
# texts (whole pipeline: ingest, normalise, mask, encode, sentiment head, write), then the
# peer's ort-fp32 sorted run. Needs the peer venv (bash ../shared/bench/setup.sh VENV --no-torch).
# Run nothing else meanwhile: the machine has 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-/tmp/peer-venv}
shift || true
THREADS=${*:-2}
SHARED=${VOCMINE_SHARED:-../shared}
C=$SHARED/corpora
FILES="$C/waimai_10k/test.jsonl $C/online_shopping_10_cats/test.jsonl $C/twitter_airline/test.jsonl"
OUT=${BENCH_OUT:-/tmp/vocmine-bench}
mkdir -p "$OUT"
cargo build --release --quiet
BIN=target/release/vocmine
cat $FILES > "$OUT/texts9k.jsonl"
for t in $THREADS; do
  echo "== threads $t"
  $BIN bench $FILES --threads "$t" | tee -a "$OUT/results.txt"
  /usr/bin/time -f "score: max RSS %M KiB, wall %e s" \
    $BIN score "$OUT/texts9k.jsonl" --out "$OUT/score-t$t" --threads "$t" --tasks sentiment 2>&1 | tee -a "$OUT/results.txt"
  "$VENV/bin/python" "$SHARED/bench/peer_encode.py" --peers ort-fp32 --orders sorted --threads "$t" \
    --out-dir "$OUT/peer" --skip-numpy-check --idle-wait 60 2>&1 | grep -E "texts/s|ort-fp32" | tee -a "$OUT/results.txt"
done
echo "results in $OUT/results.txt and $OUT/peer/"
