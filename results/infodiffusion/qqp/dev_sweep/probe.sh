#!/bin/bash
# usage: probe.sh NAME [overrides...]  -- train on valid[100:]+test[:2000], sample the dev slice valid[:100]
# (first 50 sources, 1 DDIM-50 candidate), score it with bleu.py and append the probe to probes.json
# (record.py). Runs and logs go to $PROBE_DIR (default /work/scratch/infodiffusion/probe), not the repo.
set -e
name=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../.." && pwd)
cd "$repo"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 WANDB_MODE=disabled HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
probe=${PROBE_DIR:-/work/scratch/infodiffusion/probe}
mkdir -p "$probe/runs"
out=$probe/runs/$name
common="--config infodiffusion/src/infodiffusion/configs/qqp_minilm.yaml --output_dir $out --data.train_split valid[100:]+test[:2000] --data.eval_split valid[:100] --data.max_eval 50 --sample.candidates 1 --eval.mbr_quality 1 --eval.mbr_diversity 1 --train.tracker none --train.checkpoint_every 100000"
t0=$(date +%s)
.venv/bin/python -m infodiffusion train $common "$@" > "$probe/$name.train.log" 2>&1
t1=$(date +%s)
.venv/bin/python -m infodiffusion sample --run "$out" > "$probe/$name.sample.log" 2>&1
t2=$(date +%s)
bleu=$(.venv/bin/python "$here/bleu.py" "$out" 2>/dev/null)
echo "$name train_s=$((t1-t0)) sample_s=$((t2-t1)) $* bleu=$bleu" >> "$probe/summary.txt"
.venv/bin/python "$here/record.py" "$name" "$out" "$@"
