#!/usr/bin/env bash
# Dev sweep of the anti-hijack term (train.continuation_weight w, train.continuation_tokens k) on the ZsRE
# TRAIN sample (never the eval records): the first 100 valid records, T = 100 in batches of 20, the
# zsre_t100 settings otherwise, LEMoE only, seed 0. Run from the repository root of a clean clone:
#   bash results/lemoe/dev_sweep/continuation_tokens/sweep.sh OUT_DIR "w k" ["w k" ...]
# Each setting writes OUT_DIR/w<w>_k<k>/lemoe.json; summarize.py builds summary.md from them.
set -euo pipefail
out=$1; shift
python -m shared_utils.results --require-clean
for setting in "$@"; do
  read -r w k <<<"$setting"
  dir="$out/w${w}_k${k}"
  [ -f "$dir/lemoe.json" ] && { echo "skip $dir (done)"; continue; }
  python -m lemoe edit --config zsre_t100 --data shared:knowledge-editing/zsre_mend_train_1000.json \
    --methods "[lemoe]" --eval_each_batch false --output_dir "$dir" \
    --lemoe.train.continuation_weight "$w" --lemoe.train.continuation_tokens "$k" --lemoe.train.progress false
done
