#!/usr/bin/env bash
# A/B of two settings of one binary, alternated inside each round (issue 36 item 6):
# the encoder alone at batch 1 and 8 on 2 threads, and `vocmine serve --score` at 1, 8 and 32
# clients posting one comment a request and 1 client posting 16, against `vocmine score`'s batch
# rate in the same round (300 comments of corpora/sample, keep-alive, 127.0.0.1 only).
# Defaults compare the forward pass before the f16 panels and the spinning team (OLD) with now.
# Usage: ROUNDS=3 OLD_ENV="VOCMINE_F32_PANELS=1 VOCMINE_NO_TEAM=1" NEW_ENV="" bash benches/serve_ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
OLD_ENV=${OLD_ENV-VOCMINE_F32_PANELS=1 VOCMINE_NO_TEAM=1}
NEW_ENV=${NEW_ENV-}
V=${CARGO_TARGET_DIR:-target}/release/vocmine
cargo build --release --quiet
TMP=$(mktemp -d)
S=
trap '[ -n "$S" ] && kill $S 2>/dev/null; rm -rf "$TMP"' EXIT
python3 benches/sample_texts.py "$TMP/texts.jsonl"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; old: '$OLD_ENV', new: '$NEW_ENV'"
for round in $(seq "$ROUNDS"); do
  for b in 1 8; do
    for mode in old new; do
      E=$([ $mode = old ] && echo "$OLD_ENV" || echo "$NEW_ENV")
      R=$(env $E "$V" bench corpora/sample/comments.csv --batch $b --threads 2 --workers 1 2>&1 \
        | grep -o 'encode [0-9.]*s = [0-9.]* texts/s' | grep -o '[0-9.]* texts/s')
      echo "round $round encoder batch $b $mode: $R"
    done
  done
  rm -rf "$TMP/run"
  B=$("$V" score "$TMP/texts.jsonl" --out "$TMP/run" --no-index --no-embeddings 2>&1 | grep -o '[0-9.]* comments/s' | head -1)
  echo "round $round score: $B"
  for mode in old new; do
    E=$([ $mode = old ] && echo "$OLD_ENV" || echo "$NEW_ENV")
    env $E "$V" serve --score --addr 127.0.0.1:0 2>"$TMP/serve.log" &
    S=$!
    for _ in $(seq 300); do grep -q "serving on" "$TMP/serve.log" && break; sleep 0.1; done
    A=$(grep -o 'http://[0-9.:]*' "$TMP/serve.log" | head -1 | sed 's|http://||')
    python3 benches/serve_load.py "$A" "$TMP/texts.jsonl" 1 >/dev/null   # warm-up
    for CP in 1:1 8:1 32:1 1:16; do
      echo "round $round $mode $CP $(python3 benches/serve_load.py "$A" "$TMP/texts.jsonl" ${CP%:*} 0 ${CP#*:})"
    done
    echo "round $round $mode peak RSS: $(grep VmHWM /proc/$S/status | grep -o '[0-9]* kB')"
    kill -TERM $S; wait $S || true; S=
  done
done
