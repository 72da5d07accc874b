#!/usr/bin/env bash
# served.jsonl compaction and streaming readers (issue 36): a run folder whose served.jsonl
# has 200,000 lines over 2,000 ids (real records: the 300 of `vocmine score` on
# corpora/sample/comments.csv, as themselves and as 6 renamed copies, the first 2,000 of
# those; then ids drawn at random, seed 7; every line's text gets " #LINE"). For each binary,
# RUNS times on a fresh copy: peak RSS and seconds of `vocmine index RUN` (/usr/bin/time -v),
# then the seconds from `serve --score --index RUN` to /health and served.jsonl after it (a
# writer that compacts on open rewrites it to one line per id).
# Usage: bash benches/served_compaction.sh BEFORE_BIN AFTER_BIN [WORK=/tmp/served-bench] [RUNS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=$1 AFTER=$2 W=${3:-/tmp/served-bench} RUNS=${4:-2}
mkdir -p "$W"
[ -f "$W/run/scored.jsonl" ] || nice -n 19 "$AFTER" score corpora/sample/comments.csv --out "$W/run" >/dev/null
python3 - "$W" <<'PY'
import json, os, random, shutil, sys
w = sys.argv[1]
src, dst = os.path.join(w, "run"), os.path.join(w, "base")
shutil.rmtree(dst, ignore_errors=True)
shutil.copytree(src, dst)
recs = [json.loads(l) for l in open(os.path.join(src, "scored.jsonl"))]
ids = [(r, r["id"] if k == 0 else f'{r["id"]}-s{k}') for k in range(7) for r in recs][:2000]
rng = random.Random(7)
with open(os.path.join(dst, "served.jsonl"), "w") as f:
    for n in range(200_000):
        r, i = ids[n] if n < len(ids) else rng.choice(ids)
        f.write(json.dumps(dict(r, id=i, text=f'{r["text"]} #{n}'), ensure_ascii=False) + "\n")
PY
echo "served.jsonl: $(wc -lc < "$W/base/served.jsonl") (lines bytes)"
port=18790
for run in $(seq "$RUNS"); do
  for label in before after; do
    bin=$BEFORE; [ $label = after ] && bin=$AFTER
    rm -rf "$W/w"; cp -a "$W/base" "$W/w"
    /usr/bin/time -v nice -n 19 "$bin" index "$W/w" >"$W/out" 2>"$W/time"
    echo "$label index: $(tail -1 "$W/out")"
    grep -E "Elapsed|Maximum resident" "$W/time"
    rm -rf "$W/w"; cp -a "$W/base" "$W/w"
    port=$((port + 1)); t0=$(date +%s.%N)
    nice -n 19 "$bin" serve --score --index "$W/w" --addr 127.0.0.1:$port --threads 1 >"$W/serve.log" 2>&1 &
    pid=$!
    until curl -sf http://127.0.0.1:$port/health >/dev/null; do
      kill -0 $pid 2>/dev/null || { cat "$W/serve.log"; exit 1; }; sleep 0.1
    done
    t1=$(date +%s.%N); kill $pid; wait $pid || true
    echo "$label serve to /health: $(echo "$t1 - $t0" | bc) s; served.jsonl after: $(wc -lc < "$W/w/served.jsonl")"
  done
done
rm -rf "$W/w"
