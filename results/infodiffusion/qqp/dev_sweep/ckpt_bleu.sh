#!/bin/bash
# usage: ckpt_bleu.sh RUN STEP  -- sample checkpoint step_STEP of a probe run (its EMA weights) on the dev
# slice as probe.sh samples a finished run (first 50 sources of valid[:100], 1 DDIM-50 candidate) and print
# its BLEU (bleu.py). Works in a copy, $PROBE_DIR/ckpt/<run>_step<STEP>; the run itself is untouched.
set -e
run=$1; step=$2
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../.." && pwd)
cd "$repo"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 WANDB_MODE=disabled HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
probe=${PROBE_DIR:-/work/scratch/infodiffusion/probe}
out=$probe/ckpt/$(basename "$run")_step$step
rm -rf "$out"; mkdir -p "$out"
cp "$run"/config.yaml "$run"/info.json "$run"/run_config.json "$run"/vocab.json "$out"/
cp -r "$run/checkpoints/step_$step/ema" "$run/checkpoints/step_$step/model" "$out"/
.venv/bin/python -m infodiffusion sample --run "$out" > "$out.sample.log" 2>&1
.venv/bin/python "$here/bleu.py" "$out" 2>/dev/null
