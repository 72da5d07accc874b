#!/usr/bin/env bash
# Packs what a GPU run needs into .devpack/ (ignored by git), under the 64 MiB that a call of
# the `device` tool carries: the CUDA build (stripped), the base encoder, the two frozen heads
# the recipe starts from, the taxonomies and the corpora it reads, all xz-compressed (about
# 62 MiB). Run models/gpu/build_cuda.sh first. Then move models/ aside for the call (the
# working tree travels too), run `bash models/gpu/run.sh` there with `.devpack` carried, and
# put models/ back.
set -euo pipefail
cd "$(dirname "$0")/../.."
S=${VOCMINE_SHARED:-../shared}
P=.devpack
grep -qx '/.devpack/' .git/info/exclude 2>/dev/null || echo '/.devpack/' >> .git/info/exclude
mkdir -p $P
strip --strip-all -o $P/vocmine ${CARGO_TARGET_DIR:-target-cuda}/release/vocmine
xz -9e -T2 -f $P/vocmine
xz -9 -T2 -c models/multilingual-e5-small-zh-en/model.safetensors > $P/model.safetensors.xz
(cd models && tar cf - multilingual-e5-small-zh-en/config.json multilingual-e5-small-zh-en/tokenizer.json \
  frozen/heads/bank_intent.* frozen/heads/assistant_intent.* taxonomies | xz -9 > ../$P/small.tar.xz)
(cd "$S" && tar cf - corpora/online_shopping_10_cats/{train,dev}.jsonl corpora/waimai_10k/{train,dev}.jsonl \
  corpora/twitter_airline/{train,dev}.jsonl corpora/chnsenticorp_12k/{train,dev}.jsonl \
  corpora/banking77/train.jsonl corpora/clinc150/{train,dev}.jsonl \
  corpora/bitext_customer_support/train.jsonl | xz -9 > "$OLDPWD/$P/corpora.tar.xz")
cp models/gpu/*.toml $P/
du -cb $P/* | tail -n 1
