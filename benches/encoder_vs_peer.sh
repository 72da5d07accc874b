#!/usr/bin/env bash
# Encoder throughput of vocmine next to ONNX Runtime, on the same machine in one run.
#
#   bash benches/encoder_vs_peer.sh [PEER_VENV] [THREADS...]      (default: /tmp/peer-venv, 1 2)
#
# Texts: the 8,957 test texts of waimai_10k + online_shopping_10_cats + twitter_airline (the
# peer benchmark's set, in its order), batch 32, sorted by length. For each thread count, one
# after the other on an idle machine: the peer's ort-fp32, ort-opt and ort-int8 runs (fresh
# processes, `../shared/bench/peer_encode.py`), then `vocmine bench` with each engine of
# ENGINES (default "packed int8") twice: on the base encoder (`--model models/frozen`, the
# peer's model), every embedding checked against the ort-fp32 embeddings of the same texts
# (cosine >= 0.999 for both), and on the shipped bundle (`--model models`, whose encoder is
# fine-tuned, so its embeddings differ from the peer's by design: speed only).
# PEERS=ort-fp32,ort-int8 skips ort-opt (slower than ort-fp32 at 1 and 2 threads here). Needs the peer venv: bash ../shared/bench/setup.sh /tmp/peer-venv --no-torch.
# Run nothing else meanwhile: the machine has 2 cores. Takes ~25 minutes here.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-/tmp/peer-venv}
shift || true
THREADS=${*:-1 2}
SHARED=${VOCMINE_SHARED:-../shared}
C=$SHARED/corpora
FILES="$C/waimai_10k/test.jsonl $C/online_shopping_10_cats/test.jsonl $C/twitter_airline/test.jsonl"
OUT=${BENCH_OUT:-/tmp/vocmine-bench}
mkdir -p "$OUT"
cargo build --release --quiet
BIN=target/release/vocmine
for t in $THREADS; do
  echo "== threads $t" | tee -a "$OUT/results.txt"
  "$VENV/bin/python" "$SHARED/bench/peer_encode.py" --peers "${PEERS:-ort-fp32,ort-opt,ort-int8}" --orders sorted \
    --threads "$t" --work-dir "$OUT/peer-work" --out-dir "$OUT/peer" --skip-numpy-check \
    --idle-wait 60 2>&1 | grep -E "^\| ort-" | tee -a "$OUT/results.txt"
  for e in ${ENGINES:-packed int8}; do
    /usr/bin/time -f "vocmine bench ($e, base encoder): peak RSS %M KiB" $BIN bench $FILES \
      --model models/frozen --threads "$t" --engine "$e" --min-cosine 0.999 \
      --reference "$OUT/peer-work/emb_ort-fp32_t${t}_sorted.npy" 2>&1 | tee -a "$OUT/results.txt"
    /usr/bin/time -f "vocmine bench ($e, shipped model): peak RSS %M KiB" $BIN bench $FILES \
      --model models --threads "$t" --engine "$e" 2>&1 | tee -a "$OUT/results.txt"
  done
done
echo "results in $OUT/results.txt and $OUT/peer/"
