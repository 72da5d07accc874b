#!/usr/bin/env bash
# Same outputs before and after a change: runs score, topics, report and a few searches on
# corpora/sample with two vocmine binaries and compares every output file (timings removed).
#   bash benches/same_outputs.sh OLD_BINARY [NEW_BINARY]
# Build OLD_BINARY from an earlier commit, e.g.
#   git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release)
# Exit status 0 when the outputs are the same, 1 with a diff otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: same_outputs.sh OLD_BINARY [NEW_BINARY]}
NEW=${2:-target/release/vocmine}
export VOCMINE_MODEL=${VOCMINE_MODEL:-$PWD/models}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
for side in old new; do
  bin=$OLD; [ "$side" = new ] && bin=$NEW
  run=$W/$side
  "$bin" score corpora/sample/comments.csv --out "$run" > "$W/$side.score.txt" 2>&1
  "$bin" topics "$run" > "$W/$side.topics.txt" 2>&1
  "$bin" report "$run" > "$W/$side.report.txt" 2>&1
  for q in 退款 物流 "battery" "客服 态度"; do
    "$bin" search "$run" "$q" --json --limit 20 >> "$W/$side.search.json"
  done
  "$bin" search "$run" "" --json --sentiment negative --tier vip --limit 50 >> "$W/$side.search.json"
  # timings and folder names are not outputs
  sed -E -e 's/[0-9.]+s\b/Xs/g' -e 's#'"$W"'/(old|new)#RUN#g' -e 's/[0-9.]+ (comments|records|tokens)\/s/X \1\/s/g' \
    "$W/$side.score.txt" "$W/$side.topics.txt" "$W/$side.report.txt" > "$W/$side.printed.txt"
  python3 - "$run" > "$W/$side.files.txt" <<'PY'
import json, sys, pathlib
run = pathlib.Path(sys.argv[1])
drop = {"seconds", "texts_per_second", "encode_seconds", "generated", "cluster_seconds", "files"}
def clean(v):
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items() if k not in drop}
    if isinstance(v, list):
        return [clean(x) for x in v]
    return v
for name in ["scored.jsonl", "rejects.jsonl", "topics/assignments.jsonl"]:
    print("==", name); print((run / name).read_text())
for name in ["summary.json", "report.json", "topics/model.json"]:
    print("==", name); print(json.dumps(clean(json.loads((run / name).read_text())), sort_keys=True, ensure_ascii=False, indent=1))
print("== report.html"); print((run / "report.html").read_text())
PY
done
status=0
for f in printed.txt files.txt search.json; do
  if ! diff -q "$W/old.$f" "$W/new.$f" >/dev/null; then
    echo "DIFFERENT: $f"; diff "$W/old.$f" "$W/new.$f" | head -40; status=1
  fi
done
[ $status = 0 ] && echo "same outputs: score, topics, report and 5 searches on corpora/sample ($(wc -c < "$W/new.files.txt") bytes of files compared)"
exit $status
