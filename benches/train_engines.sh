#!/usr/bin/env bash
# Fine-tuning throughput of the own training engine next to candle's autograd, in one run.
#
#   bash benches/train_engines.sh [THREADS...]          (default: 1 2)
#
# Texts: the first TEXTS (default 320) rows of ChnSentiCorp train (max_len 128, batch 32, one
# linear sentiment head, dropout 0.1, the shipped settings), dev: 32 rows. For each thread
# count and each of LAYERS (default "4 12") tuned layers, `vocmine train --finetune` with
# --engine own, bf16 (where the CPU has AVX512-BF16) then candle (ENGINES overrides), STEPS (default 10, the whole epoch of 320 texts: the first steps carry the one-time page faults of the activations) steps each, fresh processes one after
# the other. texts/s is the report's `texts_per_second` (training steps only: forward,
# backward, optimiser; the frozen-layer cache and evaluations excluded); peak RSS from
# /usr/bin/time. BIN=path runs that binary instead of building. The base encoder: $VOCMINE_SHARED/models/multilingual-e5-small-zh-en.
# Run nothing else meanwhile: the machine has 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${*:-1 2}
SHARED=$(cd "${VOCMINE_SHARED:-../shared}" && pwd)
OUT=${BENCH_OUT:-/tmp/vocmine-train-bench}
TEXTS=${TEXTS:-320}
STEPS=${STEPS:-10}
rm -rf "$OUT" && mkdir -p "$OUT/data"
head -n "$TEXTS" "$SHARED/corpora/chnsenticorp_12k/train.jsonl" > "$OUT/data/train.jsonl"
head -n 32 "$SHARED/corpora/chnsenticorp_12k/dev.jsonl" > "$OUT/data/dev.jsonl"
cat > "$OUT/spec.toml" <<TOML
corpora = "$OUT/data"
[settings]
layers = 4
epochs = 1
batch_size = 32
lr = 5e-5
head_lr = 1e-3
dropout = 0.1
checkpoint_every = 0
seed = 42
[[task]]
name = "sentiment"
train = ["train.jsonl"]
dev = ["dev.jsonl"]
hidden = 0
TOML
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-target}/release/vocmine
fi
MODEL=$SHARED/models/multilingual-e5-small-zh-en
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores; $(date -u +%FT%TZ)" | tee "$OUT/results.md"
echo "| threads | layers | engine | texts/s | peak RSS MiB |" | tee -a "$OUT/results.md"
echo "|---|---|---|---|---|" | tee -a "$OUT/results.md"
for t in $THREADS; do
  for l in ${LAYERS:-4 12}; do
    for e in ${ENGINES:-own $(grep -qw avx512_bf16 /proc/cpuinfo && echo bf16) candle}; do
      run="$OUT/run-t$t-l$l-$e"
      /usr/bin/time -f "%M" -o "$run.rss" $BIN train --finetune "$OUT/spec.toml" --model "$MODEL" \
        --out "$run" --layers "$l" --threads "$t" --engine "$e" --stop-after "$STEPS" \
        > "$run.log" 2>&1 || { cat "$run.log"; exit 1; }
      tps=$(grep -o '[0-9.]* texts/s training' "$run.log" | tail -n1 | cut -d' ' -f1)
      rss=$(( $(tail -n1 "$run.rss") / 1024 ))
      echo "| $t | $l | $e | $tps | $rss |" | tee -a "$OUT/results.md"
    done
  done
done
echo "results in $OUT/results.md"
