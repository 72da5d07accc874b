#!/usr/bin/env bash
# Leave-one-domain-out for the sentiment head recipes (MODEL_CARD.md, "Leave one domain out").
# Trains a head on the BASE encoder for recipe A (the four sentiment corpora + 1,500 bitext rows)
# and recipe B (A + ccf2018 + SemEval + corpora/handwritten), once on everything and once with
# each family held out, and reports each head's accuracy on every test set.
# usage: bash models/lodo_sentiment.sh   (from the repository root; OUT=runs/lodo by default)
set -euo pipefail
V=${VOCMINE_BIN:-target/release/vocmine}
S=${VOCMINE_SHARED:-../shared}/corpora
OUT=${OUT:-runs/lodo}
CAP=${CAP:-6000}
mkdir -p "$OUT/tests" "$OUT/heads"
# test files with a `label` field: SemEval sentences whose aspects agree, the sample's sentiment
python3 - "$S" "$OUT/tests" <<'PY'
import csv, json, sys
S, T = sys.argv[1], sys.argv[2]
for name, f in [("rest", "restaurants_test"), ("lapt", "laptops_test")]:
    with open(f"{T}/semeval_{name}.jsonl", "w") as out:
        for l in open(f"{S}/semeval2014_absa/{f}.jsonl"):
            d = json.loads(l)
            ps = {a["polarity"] for a in d.get("aspects") or []}
            if len(ps) == 1 and "conflict" not in ps:
                out.write(json.dumps({"id": d.get("id"), "text": d["text"], "label": ps.pop()}, ensure_ascii=False) + "\n")
with open(f"{T}/sample.jsonl", "w") as out:
    for r in csv.DictReader(open("corpora/sample/comments.csv")):
        out.write(json.dumps({"id": r["id"], "text": r["text"], "label": r["sentiment"]}, ensure_ascii=False) + "\n")
PY
run() { # run RECIPE HOLDOUT
  local r=$1 h=$2 data=() lf=() cap=() dev=()
  add() { data+=(--data "$1"); lf+=("$2"); cap+=("$3"); }
  [[ $h != online ]] && { add $S/online_shopping_10_cats/train.jsonl label $CAP; dev+=(--dev $S/online_shopping_10_cats/dev.jsonl); }
  [[ $h != waimai ]] && { add $S/waimai_10k/train.jsonl label $CAP; dev+=(--dev $S/waimai_10k/dev.jsonl); }
  [[ $h != twitter ]] && { add $S/twitter_airline/train.jsonl label $CAP; dev+=(--dev $S/twitter_airline/dev.jsonl); }
  [[ $h != csc ]] && { add $S/chnsenticorp_12k/train.jsonl label $CAP; dev+=(--dev $S/chnsenticorp_12k/dev.jsonl); }
  add $S/bitext_customer_support/train.jsonl label 1500
  if [[ $r == B ]]; then
    add $S/ccf2018_car_aspect/train.jsonl aspects.polarity 3000
    [[ $h != semeval ]] && { add $S/semeval2014_absa/restaurants_train.jsonl aspects.polarity $CAP
                             add $S/semeval2014_absa/laptops_train.jsonl aspects.polarity $CAP; }
    add corpora/handwritten/sentiment_train.jsonl label $CAP
  fi
  local IFS=,
  $V train --task sentiment --model models/multilingual-e5-small-zh-en --cache "$OUT/cache" \
    "${data[@]}" --label-field "${lf[*]}" --max-per-file "${cap[*]}" "${dev[@]}" \
    --relabel 'conflict=-,complaint=-,review=-,payment_issue=-,registration_problems=-,*=neutral' \
    --test $S/chnsenticorp_12k/test.jsonl --test $S/waimai_10k/test.jsonl \
    --test $S/online_shopping_10_cats/test.jsonl --test $S/twitter_airline/test.jsonl \
    --test $OUT/tests/semeval_rest.jsonl --test $OUT/tests/semeval_lapt.jsonl \
    --test $OUT/tests/sample.jsonl --test corpora/handwritten/sentiment_check.jsonl \
    --labels negative,neutral,positive --hidden 1024 --lr 3e-4 --class-weight none --seed 42 \
    --out "$OUT/heads/${r}_$h"
}
for h in none csc waimai online twitter semeval; do
  for r in B A; do
    [[ $r == A && $h == semeval ]] && continue   # A never sees SemEval
    [[ -f $OUT/heads/${r}_$h.json ]] || run $r $h > "$OUT/${r}_$h.log" 2>&1
  done
done
# accuracy of every head on every test set (from the heads' training records)
python3 - "$OUT/heads" <<'PY'
import glob, json, os, sys
for f in sorted(glob.glob(f"{sys.argv[1]}/*.json")):
    t = json.load(open(f))["training"]["test"]
    print(os.path.basename(f)[:-5], {"/".join(k.split("/")[-2:]): round(v["accuracy"] * 100, 2) for k, v in t.items()})
PY
