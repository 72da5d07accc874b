#!/usr/bin/env bash
# `vocmine score --aspects` against `vocmine score` (issue 33 item 6): the first 2,000 texts of
# the peer benchmark (../shared/corpora test splits of waimai_10k, online_shopping_10_cats and
# twitter_airline, in that order), the whole process with and without --aspects, alternated,
# ROUNDS rounds; wall clock and the encoder stage (scored / encode_seconds of summary.json,
# which with --aspects includes the tagger, the polarity head and the span mapping).
# usage: benches/score_aspects.sh [MODEL_DIR] [ROUNDS]   (after cargo build --release)
set -euo pipefail
MODEL=${1:-models}
ROUNDS=${2:-3}
BIN=target/release/vocmine
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
C=../shared/corpora
python3 - $C/waimai_10k/test.jsonl $C/online_shopping_10_cats/test.jsonl $C/twitter_airline/test.jsonl > "$W/texts.jsonl" <<'PY'
import itertools, json, sys
lines = itertools.chain.from_iterable(open(p, encoding="utf-8") for p in sys.argv[1:])
for i, l in enumerate(itertools.islice(lines, 2000)):
    print(json.dumps({"id": f"t{i}", "text": json.loads(l)["text"]}, ensure_ascii=False))
PY
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs), model $(grep -m1 '^model\s' /proc/cpuinfo | cut -d: -f2 | xargs)), $(nproc) CPUs; model $MODEL"
echo "| round | wall s, off | wall s, on | on / off | encoder stage /s, off | on | on / off |"
echo "|---|---|---|---|---|---|---|"
run() { # $1 out dir, rest extra args; prints "wall rate"
  local out=$1; shift
  rm -rf "$out"
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" score "$W/texts.jsonl" --model "$MODEL" --out "$out" --no-index "$@" > /dev/null 2>&1
  t1=$(date +%s.%N)
  python3 -c "import json,sys; d=json.load(open('$out/summary.json')); print(f'{$t1-$t0:.2f}', f'{d[\"scored\"]/d[\"encode_seconds\"]:.1f}')"
}
for r in $(seq 1 "$ROUNDS"); do
  read -r woff roff < <(run "$W/off")
  read -r won ron < <(run "$W/on" --aspects)
  python3 -c "print(f'| $r | $woff | $won | {$won/$woff:.3f} | $roff | $ron | {$ron/$roff:.3f} |')"
done
