#!/bin/bash
# usage: probe.sh NAME [overrides...]  -- train on valid[100:]+test[:2000], eval on dev valid[:100] (first 50)
set -e
name=$1; shift
cd /work/main
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 WANDB_MODE=disabled HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
out=/work/probe/runs/$name
common="--config infodiffusion/src/infodiffusion/configs/qqp_minilm.yaml --output_dir $out --data.train_split valid[100:]+test[:2000] --data.eval_split valid[:100] --data.max_eval 50 --sample.candidates 1 --eval.mbr_quality 1 --eval.mbr_diversity 1 --train.tracker none --train.checkpoint_every 100000"
t0=$(date +%s)
.venv/bin/python -m infodiffusion train $common "$@" > /work/probe/$name.train.log 2>&1
t1=$(date +%s)
.venv/bin/python -m infodiffusion sample --run $out > /work/probe/$name.sample.log 2>&1

t2=$(date +%s)
echo "$name train_s=$((t1-t0)) $* bleu=$(.venv/bin/python /work/probe/bleu.py $out 2>/dev/null)" >> /work/probe/summary.txt
