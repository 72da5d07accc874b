#!/usr/bin/env bash
# The GPU run (on the machine the `device` tool lends, from the repository root, .devpack carried):
# a smoke test of the CUDA path, then the full-depth recipe at anchor 5 (A) and anchor 1 (B) side by
# side on the one GPU, each stopped by --time-budget; A comes back in $OUT (15 MB pieces of the
# overlay, heads and report), B with a second call `bash models/gpu/run.sh fetchB` while the
# machine is warm. `BUDGET=SECONDS` sets the training time of each run.
set -uo pipefail
R=$(pwd); P=$R/.devpack; W=/tmp/w; LOG=$OUT/log.txt
exec > >(tee -a $LOG) 2>&1
echo "== $(date -u) phase ${1:-train}"
if [ "${1:-train}" = fetchB ]; then
  cd $W/out/B && split -b 15M -d encoder-top.safetensors $OUT/B.overlay. && tar cf $OUT/B-meta.tar vocmine.toml finetune.json heads; cp $W/out/B.log $OUT/; ls -l $OUT; exit 0
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; lscpu | grep 'Model name'
LIBS=$(find /opt /usr/local /usr/lib -xdev \( -name 'libcublas.so.13' -o -name 'libcurand.so.10' -o -name 'libcudart.so.13' \) 2>/dev/null | xargs -r -n1 dirname | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH=${LIBS}/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
mkdir -p $W/models/frozen $W/shared $W/out; cd $W
xz -dc $P/vocmine.xz > vocmine && chmod +x vocmine
(cd models && xz -dc $P/small.tar.xz | tar xf - && xz -T4 -dc $P/model.safetensors.xz > multilingual-e5-small-zh-en/model.safetensors) &
(cd shared && xz -dc $P/corpora.tar.xz | tar xf -) &
wait; cp $P/frozen.toml models/frozen/vocmine.toml; ldd ./vocmine | grep -i "not found"
export VOCMINE_SHARED=$W/shared RUST_BACKTRACE=1
V="$W/vocmine train --model models/frozen --device cuda"
echo "== smoke $(date -u +%T)"
$V --finetune $P/smoke.toml --out out/smoke --threads 16 2>&1 | tail -n 8 || true
[ -f out/smoke/encoder-top.safetensors ] || { echo SMOKE FAILED; exit 3; }
echo "== A (anchor 5) and B (anchor 1) side by side $(date -u +%T)"
timeout 430 $V --finetune $P/finetune_full.toml --out out/A --threads 8 --time-budget ${BUDGET:-270} > out/A.log 2>&1 &
PA=$!; sleep 3
timeout 430 $V --finetune $P/finetune_full_anchor1.toml --out out/B --threads 8 --time-budget ${BUDGET:-270} > out/B.log 2>&1 &
PB=$!
while kill -0 $PA 2>/dev/null || kill -0 $PB 2>/dev/null; do sleep 30; echo "-- $(date -u +%T) $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader)"; tail -n 1 out/A.log; tail -n 1 out/B.log; done
wait $PA; echo "A exit $?"; wait $PB; echo "B exit $?"
cp out/A.log out/B.log $OUT/
(cd out/A && split -b 15M -d encoder-top.safetensors $OUT/A.overlay. && tar cf $OUT/A-meta.tar vocmine.toml finetune.json heads)
grep -hE 'eval at|done in|budget|task |cached|rror' out/A.log out/B.log
for r in A B; do for t in intent pain_point; do echo "== $r $t on sample"; $W/vocmine eval --model out/$r --task $t --data $R/corpora/sample/comments.csv --label-field $t --bootstrap 50 --threads 16 2>&1 | head -n 3; done; done
ls -l $OUT; echo "== end $(date -u +%T)"
