#!/bin/bash
# usage: sweep.sh [LR ...]  -- the LoRA context row's dev sweep: fine-tune on valid[100:]+test[:2000],
# decode the dev slice valid[:100] (first 40 sources; never the evaluation records test[2000:]),
# one lr per call of `infodiffusion context --rows lora`; runs go to $SWEEP_DIR (default
# /tmp/infod/ar_sweep), the per-lr metrics are collected into summary.json here.
set -e
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../.." && pwd)
cd "$repo"
export OMP_NUM_THREADS=1 WANDB_MODE=disabled HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH=$repo/infodiffusion/src:$repo/shared-utils/src
out=${SWEEP_DIR:-/tmp/infod/ar_sweep}
steps=${STEPS:-80}
for lr in "${@:-3e-4 1e-3}"; do
  .venv/bin/python -m infodiffusion context --config qqp_minilm --rows lora --output-dir "$out/lr$lr" \
    --data.train_split 'valid[100:]+test[:2000]' --data.eval_split 'valid[:100]' --data.max_eval 40 \
    --ar-lr "$lr" --ar-steps "$steps" > "$out.lr$lr.log" 2>&1
done
.venv/bin/python - "$out" "$here/summary.json" <<'PY'
import json, sys
from pathlib import Path
rows = []
for f in sorted(Path(sys.argv[1]).glob("lr*/autoregressive.json")):
    r = json.loads(f.read_text())
    rows.append({"lora": r["lora"], "train_split": r["train_split"], "eval_split": r["eval_split"],
                 "git_commit": r["git_commit"], **{k: r["metrics"][k] for k in ("bleu", "rouge_l", "bertscore", "dist_1", "n", "final_loss", "train_s")}})
Path(sys.argv[2]).write_text(json.dumps(rows, indent=2) + "\n")
print(json.dumps(rows, indent=2))
PY
