#!/usr/bin/env bash
# Dev sweep of AlphaEdit (baselines.alphaedit: ridge λ = l2, null-space threshold, key positions) on the ZsRE
# TRAIN sample (never the eval records): the first 100 valid records, T = 100 in batches of 20, the zsre_t100
# settings otherwise, teacher-forced metrics only, seed 0. Run from the repository root of a clean clone:
#   bash results/lemoe/dev_sweep/alphaedit/sweep.sh OUT_DIR "l2 threshold keys" ["l2 threshold keys" ...]
# Each setting writes OUT_DIR/l2<l2>_thr<threshold>_<keys>/alphaedit.json (a finished setting is skipped).
set -euo pipefail
out=$1; shift
python -m shared_utils.results --require-clean
for setting in "$@"; do
  read -r l2 thr keys <<<"$setting"
  dir="$out/l2${l2}_thr${thr}_${keys}"
  [ -f "$dir/alphaedit.json" ] && { echo "skip $dir (done)"; continue; }
  python -m lemoe edit --config zsre_t100 --data shared:knowledge-editing/zsre_mend_train_1000.json \
    --methods "[alphaedit]" --eval_each_batch false --generation_metrics false --output_dir "$dir" \
    --baselines.alphaedit.l2 "$l2" --baselines.alphaedit.nullspace_threshold "$thr" \
    --baselines.alphaedit.keys "$keys" --lemoe.train.progress false
done
