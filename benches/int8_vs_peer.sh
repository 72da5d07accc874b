#!/usr/bin/env bash
# The int8 engine on each of its tiles next to ONNX Runtime fp32 and int8, same machine, one run.
#
#   bash benches/int8_vs_peer.sh [PEER_VENV] [THREADS...]     (default: /tmp/peer-venv, 1 2)
#
# Texts: the peer benchmark's 8,957 test texts (waimai_10k + online_shopping_10_cats +
# twitter_airline, in that order; LIMIT=N keeps the first N), batch 32, sorted by length. For
# each thread count: the peer's ort-fp32 and ort-int8 (fresh processes,
# ../shared/bench/peer_encode.py), then `vocmine bench` with the f32 packed engine and the
# int8 engine on each of KERNELS (default "amx vnni": VOCMINE_KERNELS forces the int8 tiles),
# every embedding checked against ort-fp32's (cosine >= 0.999). MODEL (default models/frozen,
# the base encoder the peer runs) is the encoder benchmarked. Records the CPU model, its SIMD
# and AMX flags and the load average with the results.
# Needs the peer venv: bash ../shared/bench/setup.sh /tmp/peer-venv --no-torch.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-/tmp/peer-venv}
shift || true
THREADS=${*:-1 2}
SHARED=${VOCMINE_SHARED:-../shared}
C=$SHARED/corpora
FILES="$C/waimai_10k/test.jsonl $C/online_shopping_10_cats/test.jsonl $C/twitter_airline/test.jsonl"
OUT=${BENCH_OUT:-/tmp/vocmine-int8-bench}
MODEL=${MODEL:-models/frozen}
LIMIT_PEER=()
LIMIT_OURS=()
if [ -n "${LIMIT:-}" ]; then
  LIMIT_PEER=(--limit "$LIMIT")
  LIMIT_OURS=(--limit "$LIMIT")
fi
mkdir -p "$OUT"
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/vocmine
R=$OUT/results.txt
{
  echo "== $(date -u +%FT%TZ) texts ${LIMIT:-all} model $MODEL"
  echo "cpu:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ') model $(grep -m1 '^model\s' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), $(nproc) cpus"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (the machine should be idle)"
  echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' |
    grep -E '^(avx2|fma|avx512f|avx512bw|avx512_vnni|avx512_bf16|amx_tile|amx_int8|amx_bf16)$' |
    tr '\n' ' ')"
} | tee -a "$R"
for t in $THREADS; do
  echo "== threads $t" | tee -a "$R"
  "$VENV/bin/python" "$SHARED/bench/peer_encode.py" --peers "${PEERS:-ort-fp32,ort-int8}" \
    --orders sorted --threads "$t" --work-dir "$OUT/peer-work" --out-dir "$OUT/peer" \
    --skip-numpy-check --idle-wait "${IDLE_WAIT:-60}" "${LIMIT_PEER[@]}" 2>&1 |
    grep -E "^\| ort-" | tee -a "$R"
  ref=$OUT/peer-work/emb_ort-fp32_t${t}_sorted${LIMIT:+_limit$LIMIT}.npy
  echo "load before vocmine: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$R"
  $BIN bench $FILES --threads "$t" --engine packed --model "$MODEL" --reference "$ref" \
    "${LIMIT_OURS[@]}" 2>&1 | grep -E "^bench|cosine" | tee -a "$R"
  for k in ${KERNELS:-amx vnni}; do
    echo "int8 tiles: VOCMINE_KERNELS=$k" | tee -a "$R"
    VOCMINE_KERNELS=$k $BIN bench $FILES --threads "$t" --engine int8 --model "$MODEL" \
      --reference "$ref" "${LIMIT_OURS[@]}" 2>&1 | grep -E "^bench|cosine|vocmine:" | tee -a "$R"
  done
done
echo "results in $R and $OUT/peer/"
